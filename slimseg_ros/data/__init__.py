"""Datasets, class specs and transforms (numpy/OpenCV/torch; no torchvision, no ROS)."""

from __future__ import annotations

from slimseg_ros.data.base import SegmentationDataset
from slimseg_ros.data.camvid import CamVidDataset
from slimseg_ros.data.cityscapes import CityscapesDataset
from slimseg_ros.data.class_spec import ClassSpec, builtin_class_specs, load_class_spec
from slimseg_ros.data.factory import DATASET_NAMES, build_dataset
from slimseg_ros.data.folder import FolderDataset
from slimseg_ros.data.seeding import make_generator, seed_everything, worker_init_fn
from slimseg_ros.data.synthetic import SyntheticScenes
from slimseg_ros.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    to_tensors,
)

__all__ = [
    "DATASET_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CamVidDataset",
    "CityscapesDataset",
    "ClassSpec",
    "EvalTransform",
    "FolderDataset",
    "SegmentationDataset",
    "SyntheticScenes",
    "TrainTransform",
    "build_dataset",
    "builtin_class_specs",
    "load_class_spec",
    "make_generator",
    "seed_everything",
    "to_tensors",
    "worker_init_fn",
]
