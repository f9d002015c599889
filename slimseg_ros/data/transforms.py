"""Segmentation transforms in numpy/OpenCV/torch (no torchvision).

Every random transform draws from a ``numpy.random.Generator`` that is passed in or owned by the
transform object, so results are reproducible from a seed (see ``seeding.worker_init_fn`` for
DataLoader workers). Labels are only ever resampled with nearest neighbour, and pixels that come
from outside the image are ``ignore_index``, so a transformed label holds only the original
values plus ignore.

Output of :class:`TrainTransform` / :class:`EvalTransform`: ``(image, label)`` torch tensors,
float32 3xHxW normalised with mean/std on [0, 1] pixel values, and int64 HxW; the default
DataLoader collate stacks them.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    """Normalise ``size`` (int or (H, W)) to a tuple of two positive ints."""
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        values = tuple(int(v) for v in size)
        if len(values) != 2:
            raise ValueError(f"{what} must be an int or (height, width), got {size!r}")
        h, w = values
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return h, w


def _check_sample(image: np.ndarray, label: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an HxWx3 uint8 RGB array, got shape {image.shape} {image.dtype}"
        )
    if label.dtype != np.uint8 or label.shape != image.shape[:2]:
        raise ValueError(
            f"label must be an HxW uint8 array matching the image {image.shape[:2]}, "
            f"got shape {label.shape} {label.dtype}"
        )


def _check_mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean_arr.size != 3 or std_arr.size != 3:
        raise ValueError(f"mean and std need 3 values (R, G, B), got {mean!r} and {std!r}")
    if np.any(std_arr <= 0):
        raise ValueError(f"std values must be positive, got {std!r}")
    return mean_arr, std_arr


def random_scale_crop(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    crop_size: tuple[int, int],
    scale_range: tuple[float, float],
    ignore_index: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """Rescale by a random factor, then take a random crop, padding where the image is too small.

    Scale and crop are one affine warp, so the cost is proportional to the crop, not to the
    (up to 4x larger) rescaled image. Padding is 0 in the image and ``ignore_index`` in the label;
    an image smaller than the crop lands at a random position inside it.

    Args:
        image: HxWx3 uint8.
        label: HxW uint8.
        rng: Source of randomness.
        crop_size: Output (height, width).
        scale_range: ``(low, high)`` of the uniform scale factor.
        ignore_index: Label value of padded pixels.

    Returns:
        ``(image, label)`` of size ``crop_size``.
    """
    crop_h, crop_w = crop_size
    h, w = label.shape
    scale = float(rng.uniform(scale_range[0], scale_range[1]))
    scaled_h, scaled_w = max(1, round(h * scale)), max(1, round(w * scale))
    # Offsets of the crop in the rescaled image; negative when the image is smaller than the crop.
    y0 = int(rng.integers(min(0, scaled_h - crop_h), max(0, scaled_h - crop_h) + 1))
    x0 = int(rng.integers(min(0, scaled_w - crop_w), max(0, scaled_w - crop_w) + 1))
    sy, sx = scaled_h / h, scaled_w / w
    # Pixel-centre aligned like cv2.resize: u' = s * (u + 0.5) - 0.5, then shift by the offset.
    matrix = np.array(
        [[sx, 0.0, 0.5 * sx - 0.5 - x0], [0.0, sy, 0.5 * sy - 0.5 - y0]], dtype=np.float64
    )
    out_image = cv2.warpAffine(
        image, matrix, (crop_w, crop_h), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    out_label = cv2.warpAffine(
        label, matrix, (crop_w, crop_h), flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT, borderValue=int(ignore_index),
    )
    return out_image, out_label


def hflip(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror image and label left-right together."""
    return cv2.flip(image, 1), cv2.flip(label, 1)


# RGB -> YIQ; a hue shift is a rotation of the (I, Q) chroma plane around the grey (Y) axis.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], dtype=np.float64)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_GREY_WEIGHTS = _RGB_TO_YIQ[0]


def color_matrix(
    brightness: float, contrast: float, saturation: float, hue: float, grey_mean: float
) -> np.ndarray:
    """The 3x4 affine RGB map of the given jitter factors (applied in that order).

    Args:
        brightness: Multiplicative factor (1 = unchanged).
        contrast: Factor around the mean grey level (1 = unchanged).
        saturation: Blend factor between grey (0) and the colour (1).
        hue: Rotation of the chroma plane in turns of the colour wheel (0 = unchanged).
        grey_mean: Mean grey level (0..255) of the input image, the pivot of the contrast step.

    Returns:
        ``[M | t]`` with ``rgb' = M @ rgb + t``.
    """
    linear = np.eye(3) * (brightness * contrast)
    offset = np.full(3, (1 - contrast) * brightness * grey_mean)
    sat = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _GREY_WEIGHTS)
    angle = 2 * np.pi * hue
    rot = np.array([[1, 0, 0],
                    [0, np.cos(angle), -np.sin(angle)],
                    [0, np.sin(angle), np.cos(angle)]])
    chroma = _YIQ_TO_RGB @ rot @ _RGB_TO_YIQ @ sat
    # Saturation and hue keep grey levels grey, so the offset (a grey) passes unchanged.
    return np.hstack([chroma @ linear, (chroma @ offset)[:, None]])


def photometric_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> np.ndarray:
    """Randomly change brightness, contrast, saturation and hue of an RGB uint8 image.

    Factors follow torchvision's ColorJitter: brightness/contrast/saturation factors are drawn
    from ``[1 - x, 1 + x]``, the hue shift from ``[-hue, hue]`` turns of the colour wheel
    (``hue <= 0.5``). The hue change is a rotation in YIQ space (close to, not exactly, an HSV
    hue shift). All four steps are one affine colour map applied in a single OpenCV pass, so
    intermediate values are not clipped as in a step-by-step implementation.

    Args:
        image: HxWx3 uint8 RGB.
        rng: Source of randomness.
        brightness: Strength of the brightness change (0 disables it).
        contrast: Strength of the contrast change (0 disables it).
        saturation: Strength of the saturation change (0 disables it).
        hue: Largest hue shift as a fraction of the colour wheel (0 disables it).

    Returns:
        The jittered HxWx3 uint8 RGB image (a new array).
    """
    b = float(rng.uniform(1 - brightness, 1 + brightness)) if brightness > 0 else 1.0
    c = float(rng.uniform(1 - contrast, 1 + contrast)) if contrast > 0 else 1.0
    s = float(rng.uniform(1 - saturation, 1 + saturation)) if saturation > 0 else 1.0
    h = float(rng.uniform(-hue, hue)) if hue > 0 else 0.0
    if b == 1.0 and c == 1.0 and s == 1.0 and h == 0.0:
        return image.copy()
    grey_mean = float(np.dot(cv2.mean(image)[:3], _GREY_WEIGHTS)) if c != 1.0 else 0.0
    # cv2.transform rounds and saturates to uint8 per pixel.
    return cv2.transform(image, color_matrix(b, c, s, h, grey_mean))


def camera_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    gamma: float = 0.0,
    gain: float = 0.0,
    lift: float = 0.0,
    noise: float = 0.0,
    blur: float = 0.0,
) -> np.ndarray:
    """Make ``image`` look as if another camera had taken it: tone curve, colour cast, noise, blur.

    A robot's camera differs from the training camera in its tone curve (gamma), white balance
    (a colour cast: per-channel gains), black level (lifted shadows) and sensor noise and focus.
    Gamma, gains and lift are one lookup table per channel (a single pass), so they cost little.

    Args:
        image: HxWx3 uint8 RGB.
        rng: Source of randomness.
        gamma: The tone-curve exponent is drawn log-uniformly from ``[1/(1+gamma), 1+gamma]``
            (0 disables it; 1 spans 0.5..2: brighter mid-tones to darker ones).
        gain: Per-channel gains are drawn from ``[1 - gain, 1 + gain]`` (0 disables).
        lift: The black level is raised by up to ``lift`` of the range (0 disables).
        noise: Gaussian noise of standard deviation up to ``noise`` grey levels (0 disables).
        blur: Probability of a Gaussian blur with sigma in [0.3, 1.5] px (0 disables).

    Returns:
        A new HxWx3 uint8 RGB image.
    """
    exponent = float(np.exp(rng.uniform(-1, 1) * np.log1p(gamma))) if gamma > 0 else 1.0
    gains = rng.uniform(1 - gain, 1 + gain, size=3) if gain > 0 else np.ones(3)
    black = float(rng.uniform(0, lift)) if lift > 0 else 0.0
    out = image
    if exponent != 1.0 or black or np.any(gains != 1.0):
        x = np.linspace(0.0, 1.0, 256) ** exponent
        curves = [np.clip((black + (1 - black) * x) * g, 0, 1) * 255 + 0.5 for g in gains]
        lut = np.stack(curves, axis=1).astype(np.uint8).reshape(256, 1, 3)
        out = cv2.LUT(out, lut)
    if blur > 0 and rng.random() < blur:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.5)))
    if noise > 0:
        sigma = float(rng.uniform(0, noise))
        grain = rng.standard_normal(out.shape, dtype=np.float32) * sigma
        out = np.clip(out.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    return out.copy() if out is image else out


def to_tensors(
    image: np.ndarray,
    label: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert to torch: float32 3xHxW ``(x / 255 - mean) / std`` and int64 HxW labels."""
    mean_arr, std_arr = _check_mean_std(mean, std)
    scale = 1.0 / (255.0 * std_arr)
    offset = -mean_arr / std_arr
    out = np.empty((3,) + image.shape[:2], dtype=np.float32)
    # One fused OpenCV pass per channel plane, written straight into the CHW buffer: far faster
    # than the numpy expression plus transpose (no temporaries, no strided copy).
    for c, plane in enumerate(cv2.split(image)):
        cv2.addWeighted(plane, float(scale[c]), plane, 0.0, float(offset[c]), dst=out[c],
                        dtype=cv2.CV_32F)
    return torch.from_numpy(out), torch.from_numpy(label.astype(np.int64))


class TrainTransform:
    """Training augmentation: photometric jitter, random scale + crop (padded), flip, normalise.

    Args:
        crop_size: Output size, int or (height, width).
        scale_range: ``(low, high)`` range of the random scale factor.
        mean: Per-channel mean of [0, 1] RGB pixels.
        std: Per-channel standard deviation of [0, 1] RGB pixels.
        hflip_prob: Probability of a left-right flip.
        brightness: Brightness jitter strength (0 disables).
        contrast: Contrast jitter strength (0 disables).
        saturation: Saturation jitter strength (0 disables).
        hue: Hue jitter, fraction of the colour wheel (0 disables).
        camera: Keyword arguments of :func:`camera_jitter` (``gamma``, ``gain``, ``lift``,
            ``noise``, ``blur``); empty disables it.
        camera_prob: Probability that a sample goes through :func:`camera_jitter`.
        ignore_index: Label value for padded pixels.
        seed: Seed of the transform's own generator (``None``: fresh entropy). DataLoader
            workers reseed it through :func:`slimseg_ros.data.seeding.worker_init_fn`.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int],
        scale_range: Sequence[float] = (0.5, 2.0),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        hflip_prob: float = 0.5,
        brightness: float = 0.25,
        contrast: float = 0.25,
        saturation: float = 0.25,
        hue: float = 0.02,
        camera: dict[str, float] | None = None,
        camera_prob: float = 0.0,
        ignore_index: int = 255,
        seed: int | None = None,
    ) -> None:
        self.crop_size = _pair(crop_size, "crop_size")
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range!r}")
        self.scale_range = (lo, hi)
        self.mean, self.std = (tuple(float(v) for v in a) for a in _check_mean_std(mean, std))
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {hflip_prob}")
        self.hflip_prob = float(hflip_prob)
        for name, value, top in (("brightness", brightness, 1.0), ("contrast", contrast, 1.0),
                                 ("saturation", saturation, 1.0), ("hue", hue, 0.5)):
            if not 0.0 <= value <= top:
                raise ValueError(f"{name} must be in [0, {top}], got {value}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.camera = dict(camera or {})
        unknown = sorted(set(self.camera) - {"gamma", "gain", "lift", "noise", "blur"})
        if unknown:
            raise ValueError(f"unknown camera jitter option(s) {', '.join(unknown)}; "
                             "known: blur, gain, gamma, lift, noise")
        if any(float(v) < 0 for v in self.camera.values()) or not 0 <= camera_prob <= 1:
            raise ValueError("camera jitter strengths must be >= 0 and camera_prob in [0, 1]")
        self.camera_prob = float(camera_prob)
        if not 0 <= ignore_index <= 255:
            raise ValueError(f"ignore_index must be in 0..255, got {ignore_index}")
        self.ignore_index = int(ignore_index)
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        """Replace the transform's generator by one seeded with ``seed``."""
        self.rng = np.random.default_rng(seed)

    def augment(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply the random geometric and photometric steps; return uint8 numpy arrays."""
        _check_sample(image, label)
        rng = self.rng if rng is None else rng
        # Colours first, so the padding added by the crop stays exactly 0.
        image = photometric_jitter(
            image, rng, self.brightness, self.contrast, self.saturation, self.hue
        )
        if self.camera and rng.random() < self.camera_prob:
            image = camera_jitter(image, rng, **self.camera)
        image, label = random_scale_crop(
            image, label, rng, self.crop_size, self.scale_range, self.ignore_index
        )
        if rng.random() < self.hflip_prob:
            image, label = hflip(image, label)
        return image, label

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment and convert one sample.

        Args:
            image: HxWx3 uint8 RGB.
            label: HxW uint8 train ids.
            rng: Generator to draw from; defaults to the transform's own.

        Returns:
            float32 3 x crop_h x crop_w image and int64 crop_h x crop_w label tensors.
        """
        image, label = self.augment(image, label, rng)
        return to_tensors(image, label, self.mean, self.std)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"hflip_prob={self.hflip_prob}, brightness={self.brightness}, "
                f"contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}, "
                f"camera={self.camera}, camera_prob={self.camera_prob})")


class EvalTransform:
    """Deterministic evaluation transform: optional resize, normalise, convert to tensors.

    By default only the image is resized and the label keeps its native resolution, because
    metrics are computed at the resolution of the ground truth (predictions are upsampled to
    it, as the runtime does). ``resize_label=True`` resizes the label too (nearest).

    Args:
        mean: Per-channel mean of [0, 1] RGB pixels.
        std: Per-channel standard deviation of [0, 1] RGB pixels.
        size: Network input size, int or (height, width); ``None`` keeps the image size.
        resize_label: Also resize the label to ``size``.
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        size: int | Sequence[int] | None = None,
        resize_label: bool = False,
    ) -> None:
        self.mean, self.std = (tuple(float(v) for v in a) for a in _check_mean_std(mean, std))
        self.size = None if size is None else _pair(size, "size")
        self.resize_label = bool(resize_label)

    def __call__(
        self, image: np.ndarray, label: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return float32 3xHxW image and int64 label tensors."""
        _check_sample(image, label)
        if self.size is not None and image.shape[:2] != self.size:
            h, w = self.size
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            if self.resize_label:
                label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
        return to_tensors(image, label, self.mean, self.std)

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size}, resize_label={self.resize_label})"
