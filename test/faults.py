"""Faults to throw at the node (imported by name: pytest puts test/ on sys.path).

Malformed camera messages, random parameter sets (valid and not) and unusable model files, each
drawn from a seeded generator so that a failing run can be repeated exactly.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np

ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "16UC1", "8UC3", "yuv422",
             "yuv422_yuy2", "RGB8", "", "rgb9", "bayer_rggb8", "32FC1", "jpeg", "\u00e9\u00e9"]
COMPRESSED_FORMATS = ["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth", "",
                      "tiff"]


def fuzzed_raw(rng: np.random.Generator, header: Any, max_bytes: int = 1 << 18) -> Any:
    """A ``sensor_msgs/Image`` that is mostly wrong: declared sizes far beyond the data, random
    steps, encodings known and not, random ``is_bigendian``; sometimes a consistent image of a
    random encoding. At most ``max_bytes`` of data."""
    from sensor_msgs.msg import Image

    kind = int(rng.integers(0, 6))
    h, w = (int(v) for v in rng.integers(0, 700, 2))
    if kind == 0:  # declared sizes far beyond the data
        h, w = (int(v) for v in rng.integers(1 << 14, 1 << 31, 2))
    encoding = str(rng.choice(ENCODINGS))
    step = int(rng.choice([0, w, w * 3, w * 4 + 7, int(rng.integers(0, 1 << 31))]))
    size = int(rng.choice([0, 1, step * min(h, 1000), int(rng.integers(0, 1 << 20))]))
    if kind == 1:  # a consistent image of a random encoding (often valid)
        h, w = int(rng.integers(1, 200)), 2 * int(rng.integers(1, 200))
        step = w * int(rng.integers(1, 5))
        size = step * h
    data = rng.integers(0, 256, min(size, max_bytes), dtype=np.uint8).tobytes()
    return Image(header=header, height=h % (1 << 32), width=w % (1 << 32), encoding=encoding,
                 is_bigendian=int(rng.integers(0, 256)), step=step % (1 << 32), data=data)


def fuzzed_compressed(rng: np.random.Generator, header: Any, good: list[bytes]) -> Any:
    """A ``sensor_msgs/CompressedImage`` from one of the ``good`` encoded images: random bytes,
    truncated, corrupted, a PNG header declaring 100000x100000, or intact; a random format."""
    from sensor_msgs.msg import CompressedImage

    base = bytearray(good[int(rng.integers(0, len(good)))])
    kind = int(rng.integers(0, 5))
    if kind == 0:
        data = bytes(rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8))
    elif kind == 1:
        data = bytes(base[: int(rng.integers(0, len(base)))])
    elif kind == 2:
        for _ in range(int(rng.integers(1, 20))):
            base[int(rng.integers(0, len(base)))] = int(rng.integers(0, 256))
        data = bytes(base)
    elif kind == 3 and base[:4] == b"\x89PNG":  # a header claiming a huge image
        base[16:24] = struct.pack(">II", 100_000, 100_000)
        data = bytes(base)
    else:
        data = bytes(base)
    return CompressedImage(header=header, format=str(rng.choice(COMPRESSED_FORMATS)), data=data)


PARAMETER_CHOICES: dict[str, list[Any]] = {
    "width": [0.25, 0.5, 0.75, 1.0, 1, 0.3, -1.0, 2.0, "wide"],
    "adaptive": [True, False, "yes"],
    "target_fps": [5.0, 15, 30.0, 0.0, 1e9, "fast"],
    "min_width": [0.0, 0.5, 0.8, 1.0], "max_width": [0.25, 0.6, 1.0, 0.0],
    "battery_thresholds": [[0.5, 0.3, 0.15], [0.2, 0.4, 0.1], [0.5], [1.5, 0.2, 0.1]],
    "battery_widths": [[0.75, 0.5, 0.25], [0.5, 0.75, 0.25]],
    "battery_hysteresis": [0.0, 0.03, 0.6], "min_dwell_s": [0.0, 3, 1e5],
    "overrun_frames": [1, 3, 0, 2.5], "publish_color": [True, False],
    "overlay_alpha": [0.0, 0.5, 2.0], "max_image_pixels": [100, 8294400, 0],
    "input_reliability": ["auto", "reliable", "best_effort", "fast"],
    "input_transport": ["raw", "compressed", "theora"],
    "model_path": ["/elsewhere.safetensors"], "no_such_parameter": [1],
}
"""Values per parameter, valid and not: widths the model lacks, out-of-range values, strings
for numbers, integers for doubles, descending thresholds, read-only and unknown names."""


def random_parameter_set(rng: random.Random) -> dict[str, Any]:
    """One parameter and a value for it from :data:`PARAMETER_CHOICES`."""
    name = rng.choice(sorted(PARAMETER_CHOICES))
    return {name: rng.choice(PARAMETER_CHOICES[name])}


def bad_model_files(work: Path, good: Path) -> dict[str, Path]:
    """Unusable model files by kind, made in ``work`` (``good``: a real checkpoint to spoil)."""
    from safetensors.numpy import save_file

    work.mkdir(parents=True, exist_ok=True)
    bad = {"empty": work / "empty.safetensors", "random bytes": work / "random.safetensors",
           "truncated": work / "truncated.safetensors",
           "no slimseg metadata": work / "plain.safetensors",
           "metadata not JSON": work / "badjson.safetensors", "a pickle": work / "model.pt"}
    bad["empty"].write_bytes(b"")
    bad["random bytes"].write_bytes(os.urandom(4096))
    data = good.read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    save_file({"w": np.zeros(3, np.float32)}, str(bad["no slimseg metadata"]))
    save_file({"w": np.zeros(3, np.float32)}, str(bad["metadata not JSON"]),
              metadata={"slimseg": "{not json"})
    bad["a pickle"].write_bytes(b"\x80\x04\x95" + os.urandom(200))
    return bad
