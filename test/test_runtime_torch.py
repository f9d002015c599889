"""The torch runtime: uint8 RGB in, uint8 labels out at the input resolution, every width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimseg_ros.model import ModelConfig
from slimseg_ros.runtime import load_engine

CONFIG = ModelConfig(num_classes=5, head_channels=32)


@pytest.fixture(scope="module")
def engine(make_checkpoint):
    path = make_checkpoint(CONFIG, input_size=(64, 96))
    return load_engine(path, backend="torch", device="cpu", warmup_repeats=1)


@pytest.mark.parametrize("shape", [(64, 96), (65, 97), (37, 101), (120, 160), (1, 1)])
def test_labels_match_input_size_dtype_and_class_range(engine, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    for width in engine.widths:
        labels = engine.infer(image, width)
        assert labels.shape == shape and labels.dtype == np.uint8
        assert labels.max() < CONFIG.num_classes


def test_widths_latency_and_metadata_are_reported(engine) -> None:
    assert engine.widths == CONFIG.widths
    assert set(engine.latency_s) == set(CONFIG.widths)
    assert all(v > 0 for v in engine.latency_s.values())
    assert engine.backend == "torch" and engine.device == "cpu" and engine.precision == "fp32"
    assert engine.input_size == (64, 96)


def test_engine_output_equals_the_slimmable_network(engine) -> None:
    from slimseg_ros.model import load_checkpoint

    model, meta = load_checkpoint(engine.model_path)
    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mean = torch.tensor(meta.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(meta.std).reshape(1, 3, 1, 1)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - mean) / std
    for width in engine.widths:
        with torch.no_grad(), model.using_width(width):
            small = model(x).argmax(1)[0].numpy()
        rows = np.arange(64) * small.shape[0] // 64
        cols = np.arange(96) * small.shape[1] // 96
        expected = small[rows][:, cols].astype(np.uint8)
        got = engine.infer(image, width)
        assert (got == expected).mean() >= 0.999, width


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((8, 8), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 4), np.uint8), "HxWx3"),
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_raise_one_clear_error(engine, bad, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        engine.infer(bad, 1.0)


def test_unknown_width_is_rejected_with_the_valid_list(engine) -> None:
    with pytest.raises(ValueError, match=r"0\.3.*0\.25, 0\.5, 0\.75, 1"):
        engine.infer(np.zeros((8, 8, 3), np.uint8), 0.3)


def test_fp16_on_cpu_is_refused_with_a_reason(make_checkpoint) -> None:
    path = make_checkpoint(CONFIG, input_size=(32, 32))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        load_engine(path, backend="torch", device="cpu", precision="fp16")


def test_a_pytorch_pickle_as_model_is_named_one(tmp_path) -> None:
    from slimseg_ros.model.checkpoint import CheckpointError
    from slimseg_ros.runtime import model_metadata

    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04\x95" + bytes(64))  # what torch.save's legacy format starts with
    with pytest.raises(CheckpointError, match=r"model\.pt looks like a PyTorch pickle "
                                               r"\(torch\.save\), not a \.safetensors checkpoint"):
        model_metadata(pickled)
    zipped = tmp_path / "model.pth"
    zipped.write_bytes(b"PK\x03\x04" + bytes(64))  # torch.save's zip format
    with pytest.raises(CheckpointError, match="looks like a PyTorch pickle"):
        model_metadata(zipped)
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        model_metadata(tmp_path)
