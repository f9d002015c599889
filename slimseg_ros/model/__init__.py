"""Pure-PyTorch model layer: slimmable ops, the SlimSeg network, freezing, checkpoints."""

from .checkpoint import (
    CheckpointError,
    CheckpointMeta,
    file_sha256,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from .config import DEFAULT_WIDTHS, ModelConfig
from .ops import ConvAct, SlimConv, make_divisible
from .pipeline import SegmentationPipeline
from .profile import count_flops, count_params
from .slimseg import LOGIT_STRIDE, SlimSegNet, build_static

__all__ = [
    "CheckpointError", "CheckpointMeta", "ConvAct", "DEFAULT_WIDTHS", "LOGIT_STRIDE",
    "ModelConfig", "SegmentationPipeline", "SlimConv", "SlimSegNet", "build_static", "count_flops",
    "count_params", "file_sha256", "load_checkpoint", "make_divisible", "read_metadata",
    "save_checkpoint",
]
