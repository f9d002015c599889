"""Inference engines behind one interface:
``engine.infer(rgb_uint8_hwc, width) -> uint8 labels``."""

from .engine import Runner, SegmentationEngine, validate_rgb
from .loader import (
    DEFAULT_MODEL_NAME, default_model_path, load_engine, load_model, load_point_engine,
    model_metadata, resolve_model_path)
from .points import OperatingPoint, PointEngine, point_key

__all__ = [
    "DEFAULT_MODEL_NAME", "Runner", "SegmentationEngine", "default_model_path", "load_engine",
    "load_model", "load_point_engine", "OperatingPoint", "PointEngine", "point_key",
    "model_metadata", "resolve_model_path", "validate_rgb",
]
