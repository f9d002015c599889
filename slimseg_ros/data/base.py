"""The shared shape of every segmentation dataset: raw samples plus an optional transform hook."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from slimseg_ros.data.class_spec import ClassSpec

#: ``transform(image, label) -> anything`` (usually a pair of torch tensors).
Transform = Callable[[np.ndarray, np.ndarray], Any]


class SegmentationDataset:
    """Map-style dataset of ``(image, label)`` pairs.

    Subclasses implement :meth:`__len__` and :meth:`load`. ``dataset[i]`` returns ``load(i)``
    passed through ``transform`` when one is set, so the same object serves raw numpy access
    (bag writing, evaluation at native resolution) and tensor batches for training.

    Attributes:
        class_spec: Names, palette and ignore index of the labels.
        transform: Optional ``transform(image, label)`` applied in ``__getitem__``.
    """

    class_spec: ClassSpec
    transform: Transform | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` before transforms.

        Returns:
            ``(image, label)``: HxWx3 uint8 RGB and HxW uint8 train ids (ignore = ignore_index).
        """
        raise NotImplementedError

    def name(self, index: int) -> str:
        """Return a short identifier of sample ``index`` (file stem by default)."""
        return str(index)

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample index {index} out of range for {n} samples")
        return index % n

    def __getitem__(self, index: int) -> Any:
        image, label = self.load(self._check_index(int(index)))
        if self.transform is None:
            return image, label
        return self.transform(image, label)

    @property
    def num_classes(self) -> int:
        """Number of classes of the labels."""
        return self.class_spec.num_classes

    @property
    def ignore_index(self) -> int:
        """Label value of ignored pixels."""
        return self.class_spec.ignore_index
