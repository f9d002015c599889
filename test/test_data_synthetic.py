"""Synthetic scenes (determinism, learnability) and reproducible DataLoader pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimseg_ros.data import (
    SegmentationDataset,
    SyntheticScenes,
    TrainTransform,
    build_dataset,
    make_generator,
    worker_init_fn,
)


def test_same_seed_same_scenes_independent_of_access_order() -> None:
    a = SyntheticScenes(n=5, size=(24, 32), num_classes=4, seed=3)
    b = SyntheticScenes(n=5, size=(24, 32), num_classes=4, seed=3)
    later = [a.load(i) for i in (4, 2)]
    for (image_a, label_a), i in zip(later, (4, 2)):
        image_b, label_b = b.load(i)
        assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    image_c, _ = SyntheticScenes(n=5, size=(24, 32), num_classes=4, seed=4).load(4)
    assert not np.array_equal(later[0][0], image_c)


def test_scene_format_and_label_is_the_colour() -> None:
    ds = SyntheticScenes(n=8, size=(24, 32), num_classes=5, seed=0, noise=10)
    palette = ds.class_spec.palette_array().astype(int)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (24, 32, 3) and image.dtype == np.uint8
        assert label.shape == (24, 32) and label.dtype == np.uint8 and label.max() < 5
        # Every pixel is within the noise of its class colour.
        assert np.abs(image.astype(int) - palette[label]).max() <= 10
    assert len({tuple(np.unique(ds[i][1])) for i in range(len(ds))}) > 1


def test_ignore_border() -> None:
    _, label = SyntheticScenes(n=1, size=16, ignore_border=2)[0]
    assert np.all(label[:2] == 255) and np.all(label[:, -2:] == 255)
    assert np.all(label[2:-2, 2:-2] != 255)


def test_factory_gives_each_split_its_own_scenes() -> None:
    train = build_dataset("synthetic", None, "train", n=3, size=16, seed=1)
    val = build_dataset("synthetic", None, "val", n=3, size=16, seed=1)
    again = build_dataset("synthetic", None, "train", n=3, size=16, seed=1)
    assert not np.array_equal(train[0][0], val[0][0])
    assert np.array_equal(train[0][0], again[0][0])


def test_twenty_steps_of_training_lower_the_loss() -> None:
    torch.manual_seed(0)
    ds = SyntheticScenes(n=8, size=32, num_classes=4, seed=0,
                         transform=TrainTransform(32, scale_range=(1.0, 1.0), seed=0))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 1), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 4, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    losses = []
    for _ in range(20):
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(images), labels, ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"size": 4}, {"num_classes": 1},
                                    {"shapes": (3, 1)}, {"ignore_border": 40}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticScenes(**kwargs)


def _epoch_batches(num_workers: int, seed: int) -> list[torch.Tensor]:
    ds = SyntheticScenes(n=8, size=24, seed=0, transform=TrainTransform(16, seed=seed))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, shuffle=True, num_workers=num_workers,
        worker_init_fn=worker_init_fn, generator=make_generator(seed),
    )
    return [images for _ in range(2) for images, _ in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_is_reproducible_and_epochs_differ(num_workers: int) -> None:
    first = _epoch_batches(num_workers, seed=7)
    second = _epoch_batches(num_workers, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Epoch 2 is not a replay of epoch 1 (new order and new augmentations).
    assert not torch.equal(first[0], first[2])
    other = _epoch_batches(num_workers, seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


class _SameScene(SegmentationDataset):
    """Every index is the same scene, so any difference between samples is augmentation."""

    def __init__(self, transform: TrainTransform) -> None:
        self.scene = SyntheticScenes(n=1, size=24, seed=0)
        self.class_spec = self.scene.class_spec
        self.transform = transform

    def __len__(self) -> int:
        return 2

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.scene.load(0)


@pytest.mark.parametrize("init_fn, differ", [(worker_init_fn, True), (None, False)])
def test_workers_get_different_augmentation_streams(init_fn: object, differ: bool) -> None:
    # Forked workers copy the transform's generator: without reseeding, both draw the same.
    loader = torch.utils.data.DataLoader(_SameScene(TrainTransform(16, seed=0)), batch_size=1,
                                         num_workers=2, worker_init_fn=init_fn,
                                         generator=make_generator(0))
    a, b = [images for images, _ in loader]
    assert torch.equal(a, b) != differ
