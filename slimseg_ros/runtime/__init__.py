"""Inference engines behind one interface: ``engine.infer(rgb_uint8_hwc, width) -> uint8 labels``."""

from .engine import Runner, SegmentationEngine, validate_rgb
from .loader import (
    DEFAULT_MODEL_NAME, default_model_path, load_engine, load_model, model_metadata,
    resolve_model_path)

__all__ = [
    "DEFAULT_MODEL_NAME", "Runner", "SegmentationEngine", "default_model_path", "load_engine",
    "load_model", "model_metadata", "resolve_model_path", "validate_rgb",
]
