"""Transforms: shapes, dtypes, label values, determinism, joint flips, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimseg_ros.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    camera_jitter,
    color_matrix,
    hflip,
    photometric_jitter,
    random_scale_crop,
    to_tensors,
)


def _sample(h: int = 36, w: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    label = rng.choice(np.array([0, 3, 7, 255], dtype=np.uint8), size=(h, w))
    return image, label


def test_train_transform_shapes_dtypes_and_label_values() -> None:
    image, label = _sample()
    transform = TrainTransform((20, 30), scale_range=(0.5, 2.0), seed=1)
    for _ in range(20):
        x, y = transform(image, label)
        assert x.shape == (3, 20, 30) and x.dtype == torch.float32
        assert y.shape == (20, 30) and y.dtype == torch.int64
        assert set(torch.unique(y).tolist()) <= {0, 3, 7, 255}


def test_crop_larger_than_image_is_padded_with_ignore_and_zero() -> None:
    image = np.full((10, 10, 3), 200, dtype=np.uint8)
    label = np.full((10, 10), 4, dtype=np.uint8)
    rng = np.random.default_rng(0)
    out_image, out_label = random_scale_crop(image, label, rng, (30, 40), (1.0, 1.0), 255)
    assert out_image.shape == (30, 40, 3) and out_label.shape == (30, 40)
    assert (out_label == 4).sum() == 100 and (out_label == 255).sum() == 30 * 40 - 100
    assert np.all(out_image[out_label == 255] == 0)
    assert np.all(out_image[out_label == 4] == 200)


def test_train_transform_padding_stays_zero_under_jitter() -> None:
    image = np.full((8, 8, 3), 120, dtype=np.uint8)
    label = np.full((8, 8), 2, dtype=np.uint8)
    transform = TrainTransform((32, 32), scale_range=(1.0, 1.0), brightness=0.9,
                               contrast=0.9, saturation=0.9, hue=0.3, seed=0)
    for _ in range(5):
        out_image, out_label = transform.augment(image, label)
        assert (out_label == 255).sum() == 32 * 32 - 64
        assert np.all(out_image[out_label == 255] == 0)


def test_unit_scale_crop_is_an_exact_window() -> None:
    image, label = _sample(20, 30)
    rng = np.random.default_rng(3)
    out_image, out_label = random_scale_crop(image, label, rng, (8, 9), (1.0, 1.0))
    # Find the window: the crop must equal some sub-array of the input, pixel for pixel.
    found = [
        (y, x) for y in range(20 - 8 + 1) for x in range(30 - 9 + 1)
        if np.array_equal(image[y:y + 8, x:x + 9], out_image)
    ]
    assert len(found) == 1
    y, x = found[0]
    assert np.array_equal(label[y:y + 8, x:x + 9], out_label)


def test_scale_two_doubles_regions() -> None:
    label = np.zeros((10, 10), dtype=np.uint8)
    label[:, 5:] = 1
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    _, out_label = random_scale_crop(image, label, rng, (20, 20), (2.0, 2.0))
    assert (out_label == 1).sum() == 200 and np.all(out_label[:, 10:] == 1)


def test_same_seed_same_output_different_seed_differs() -> None:
    image, label = _sample()
    a = TrainTransform((24, 24), seed=5)
    b = TrainTransform((24, 24), seed=5)
    c = TrainTransform((24, 24), seed=6)
    outs_a = [a(image, label) for _ in range(3)]
    outs_b = [b(image, label) for _ in range(3)]
    outs_c = [c(image, label) for _ in range(3)]
    for (xa, ya), (xb, yb) in zip(outs_a, outs_b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(outs_a, outs_c))
    # The generator advances: successive calls give different augmentations.
    assert not torch.equal(outs_a[0][0], outs_a[1][0])


def test_passed_rng_overrides_own_generator() -> None:
    image, label = _sample()
    transform = TrainTransform((24, 24), seed=0)
    x1, _ = transform(image, label, np.random.default_rng(9))
    transform(image, label)  # advances the own generator only
    x2, _ = transform(image, label, np.random.default_rng(9))
    assert torch.equal(x1, x2)


def test_flip_flips_image_and_label_together() -> None:
    image, label = _sample(6, 8)
    flipped_image, flipped_label = hflip(image, label)
    assert np.array_equal(flipped_image, image[:, ::-1])
    assert np.array_equal(flipped_label, label[:, ::-1])


def test_train_transform_flip_keeps_image_label_alignment() -> None:
    # Label is a function of the red channel; any geometric step must keep that relation.
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, size=(30, 40), dtype=np.uint8)
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    image[:, :, 0] = label * 50
    transform = TrainTransform((30, 40), scale_range=(1.0, 1.0), hflip_prob=1.0,
                               brightness=0, contrast=0, saturation=0, hue=0, seed=0)
    augmented_image, augmented_label = transform.augment(image, label)
    assert np.array_equal(augmented_image[:, :, 0], augmented_label * 50)
    assert np.array_equal(augmented_label, label[:, ::-1])


def test_photometric_jitter_changes_colours_not_shape() -> None:
    image, _ = _sample()
    rng = np.random.default_rng(0)
    out = photometric_jitter(image, rng, 0.4, 0.4, 0.4, 0.1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    same = photometric_jitter(image, rng, 0, 0, 0, 0)
    assert np.array_equal(same, image) and same is not image


def test_zero_saturation_gives_grey() -> None:
    image, _ = _sample()
    # saturation=1.0 draws the factor from [0, 2]; pin the draw to 0 (fully desaturated).
    grey = photometric_jitter(image, _FixedUniform(0.0), saturation=1.0)  # type: ignore[arg-type]
    assert np.all(np.abs(grey.astype(int) - grey[:, :, :1].astype(int)) <= 1)
    assert not np.all(np.abs(image.astype(int) - image[:, :, :1].astype(int)) <= 1)


def test_color_matrix_identity_and_grey_axis() -> None:
    identity = np.hstack([np.eye(3), np.zeros((3, 1))])
    assert np.allclose(color_matrix(1.0, 1.0, 1.0, 0.0, 77.0), identity)
    grey = np.array([100.0, 100.0, 100.0, 1.0])
    # Hue and saturation leave greys alone; brightness scales them.
    assert np.allclose(color_matrix(1.0, 1.0, 0.3, 0.2, 0.0) @ grey, 100.0)
    assert np.allclose(color_matrix(1.5, 1.0, 1.0, 0.0, 0.0) @ grey, 150.0)
    # Contrast 0 collapses everything onto the (brightness-scaled) mean grey.
    assert np.allclose(color_matrix(1.0, 0.0, 1.0, 0.0, 60.0) @ np.array([5.0, 200, 30, 1]), 60.0)
    # A half-turn hue rotation maps a colour to its complement around grey (red -> cyan-ish).
    red = color_matrix(1.0, 1.0, 1.0, 0.5, 0.0) @ np.array([200.0, 50, 50, 1])
    assert red[0] < red[1] and red[0] < red[2]


class _FixedUniform:
    """Stand-in generator whose uniform() always returns ``value``."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, low: float, high: float) -> float:
        return self.value


def test_to_tensors_normalises_with_mean_std() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255
    label = np.array([[0, 1, 255], [2, 2, 2]], dtype=np.uint8)
    x, y = to_tensors(image, label)
    expected_red = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    expected_green = (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    assert torch.allclose(x[0], torch.full((2, 3), expected_red), atol=1e-6)
    assert torch.allclose(x[1], torch.full((2, 3), expected_green), atol=1e-6)
    assert y.tolist() == [[0, 1, 255], [2, 2, 2]] and x.is_contiguous()


def test_eval_transform_resizes_image_only_by_default() -> None:
    image, label = _sample(36, 48)
    x, y = EvalTransform(size=(18, 24))(image, label)
    assert x.shape == (3, 18, 24) and y.shape == (36, 48)
    x, y = EvalTransform(size=(18, 24), resize_label=True)(image, label)
    assert y.shape == (18, 24) and set(torch.unique(y).tolist()) <= {0, 3, 7, 255}
    x, y = EvalTransform()(image, label)
    assert x.shape == (3, 36, 48) and torch.equal(y, torch.from_numpy(label.astype(np.int64)))


def test_dataloader_collates_batches() -> None:
    samples = [_sample(seed=i) for i in range(4)]
    transform = TrainTransform((16, 16), seed=0)
    batch = torch.utils.data.default_collate([transform(*s) for s in samples])
    assert batch[0].shape == (4, 3, 16, 16) and batch[1].shape == (4, 16, 16)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": (1, 2, 3)}, "crop_size"),
        ({"crop_size": 8, "scale_range": (2.0, 1.0)}, "scale_range"),
        ({"crop_size": 8, "std": (0.1, 0.0, 0.1)}, "std"),
        ({"crop_size": 8, "hue": 0.7}, "hue"),
        ({"crop_size": 8, "hflip_prob": 1.5}, "hflip_prob"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainTransform(**kwargs)


def test_bad_sample_is_rejected() -> None:
    image, label = _sample()
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        EvalTransform()(image.astype(np.float32), label)
    with pytest.raises(ValueError, match="label"):
        EvalTransform()(image, label[:-1])


def test_camera_jitter_is_off_at_zero_and_reproducible() -> None:
    image, _ = _sample()
    out = camera_jitter(image, np.random.default_rng(0))
    assert np.array_equal(out, image) and out is not image
    a = camera_jitter(image, np.random.default_rng(3), gamma=1.0, gain=0.3, lift=0.1, noise=5,
                      blur=1.0)
    b = camera_jitter(image, np.random.default_rng(3), gamma=1.0, gain=0.3, lift=0.1, noise=5,
                      blur=1.0)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == image.shape
    assert not np.array_equal(a, image)


def test_camera_jitter_tone_curve_and_cast_move_the_image_the_right_way() -> None:
    grey = np.full((8, 8, 3), 128, dtype=np.uint8)
    darker = brighter = 0
    for seed in range(40):  # the exponent is drawn on both sides of 1
        mean = camera_jitter(grey, np.random.default_rng(seed), gamma=1.0).mean()
        darker += mean < 127
        brighter += mean > 129
    assert darker > 5 and brighter > 5
    cast = camera_jitter(grey, np.random.default_rng(1), gain=0.3)
    assert len({int(v) for v in cast[0, 0]}) == 3  # a colour cast: channels differ
    lifted = camera_jitter(np.zeros((4, 4, 3), np.uint8), np.random.default_rng(0), lift=0.2)
    assert 0 < lifted.min() <= 0.2 * 255 + 1  # blacks are raised, never past the limit


def test_train_transform_applies_camera_jitter_by_probability_and_checks_options() -> None:
    image, label = _sample()
    kept = TrainTransform((36, 48), scale_range=(1.0, 1.0), hflip_prob=0.0, brightness=0.0,
                          contrast=0.0, saturation=0.0, hue=0.0, camera={"gain": 0.5},
                          camera_prob=0.0, seed=0)
    assert np.array_equal(kept.augment(image, label)[0], image)
    changed = TrainTransform((36, 48), scale_range=(1.0, 1.0), hflip_prob=0.0, brightness=0.0,
                             contrast=0.0, saturation=0.0, hue=0.0, camera={"gain": 0.5},
                             camera_prob=1.0, seed=0)
    assert not np.array_equal(changed.augment(image, label)[0], image)
    with pytest.raises(ValueError, match="unknown camera jitter option.*gama"):
        TrainTransform(16, camera={"gama": 1.0}, camera_prob=1.0)
