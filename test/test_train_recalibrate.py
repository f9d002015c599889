"""`slimseg recalibrate`: BN statistics re-estimated on a bag's frames, weights untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slimseg_ros.cli.main import main
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.eval import bagio
from slimseg_ros.model import load_checkpoint
from slimseg_ros.train.recalibrate import FrameBatches, spread_indices

SIZE = (32, 48)  # the checkpoint's input size; the bag's frames are 48x64 and get resized


def test_spread_indices_cover_the_whole_recording() -> None:
    assert spread_indices(10, 3) == [0, 4, 9]  # linspace 0, 4.5, 9 rounded half to even
    assert spread_indices(3, 10) == [0, 1, 2]
    assert spread_indices(0, 5) == [] and spread_indices(5, 0) == []
    picked = spread_indices(1000, 200)
    assert len(picked) == 200 and picked[0] == 0 and picked[-1] == 999


def _dark_bag(tmp_path: Path, n: int = 9) -> Path:
    rng = np.random.default_rng(0)
    # a dim camera with a blue cast: not what the model was trained on
    frames = [((rng.integers(0, 256, (48, 64, 3)) * [0.3, 0.4, 0.9]).astype(np.uint8), None)
              for _ in range(n)]
    bagio.write_frames_bag(tmp_path / "bag", frames, rate_hz=10)
    return tmp_path / "bag"


def test_frame_batches_are_resized_normalised_and_re_iterable(tmp_path: Path) -> None:
    frames = RosbagFrames(_dark_bag(tmp_path), require_labels=False)
    batches = FrameBatches(frames, range(9), SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 4)
    first, second = list(batches), list(batches)
    assert [b.shape for b in first] == [(4, 3, *SIZE), (4, 3, *SIZE)]  # the 9th alone is left out
    assert batches.frames_used == 8
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert first[0].min() >= -2.0 and first[0].max() <= 2.0  # (x/255 - 0.5) / 0.25
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        FrameBatches(frames, range(9), SIZE, (0.5,) * 3, (0.25,) * 3, 1)


def test_training_like_crops_are_the_same_on_every_pass(tmp_path: Path) -> None:
    frames = RosbagFrames(_dark_bag(tmp_path), require_labels=False)
    batches = FrameBatches(frames, range(8), SIZE, (0.5,) * 3, (0.25,) * 3, 4,
                           crop_size=(16, 24), scale_range=(0.5, 1.5))
    first, second = list(batches), list(batches)
    assert [b.shape for b in first] == [(4, 3, 16, 24)] * 2
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # every width sees the same
    resized = next(iter(FrameBatches(frames, range(8), SIZE, (0.5,) * 3, (0.25,) * 3, 4)))
    assert resized.shape == (4, 3, *SIZE)


@pytest.mark.slow
def test_recalibration_sets_bn_statistics_to_the_frames_and_keeps_the_weights(
        tmp_path: Path, capsys: pytest.CaptureFixture, make_checkpoint) -> None:
    checkpoint = make_checkpoint(input_size=SIZE)
    bag = _dark_bag(tmp_path, n=8)
    out = tmp_path / "recalibrated.safetensors"
    assert main(["recalibrate", "--checkpoint", str(checkpoint), "--bag", str(bag),
                 "--frames", "8", "--batch-size", "4", "--out", str(out)]) == 0
    assert "on 8 frames of bag" in capsys.readouterr().out
    before, _ = load_checkpoint(checkpoint)
    after, meta = load_checkpoint(out)
    assert meta.training["bn_recalibrated"]["frames"] == 8
    assert meta.training["bn_recalibrated"]["frames_as"] == "random crops 32x48 at scale 0.5-1.5"
    weights = {k: v for k, v in after.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    for key, value in weights.items():
        assert torch.equal(value, before.state_dict()[key]), key
    # The stem's BN now holds the mean and variance of the stem conv's output over the frames
    frames = RosbagFrames(bag, require_labels=False)
    # what the command feeds: training-like crops (this checkpoint records no training crop, so
    # crops of its input size) at the recipe's scale range, seed 0
    batches = list(FrameBatches(frames, range(8), SIZE, meta.mean, meta.std, 4, crop_size=SIZE,
                                scale_range=(0.5, 1.5)))
    stem = after.net.stem
    for idx, width in enumerate(after.widths):
        c_out = stem.out_channels[idx]
        ys = [F.conv2d(x, stem.weight[:c_out, :3], None, stem.stride, stem.padding)
              for x in batches]
        # a cumulative average over the batches of each batch's mean and unbiased variance
        mean = torch.stack([y.mean(dim=(0, 2, 3)) for y in ys]).mean(0)
        var = torch.stack([y.var(dim=(0, 2, 3)) for y in ys]).mean(0)
        bn = stem.bn[idx]
        torch.testing.assert_close(bn.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(bn.running_mean, before.net.stem.bn[idx].running_mean)


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of --bag or --dataset"),
    (["--bag", "B", "--dataset", "camvid"], "exactly one of --bag or --dataset"),
    (["--dataset", "camvid"], "--dataset needs --data-root"),
    (["--bag", "B", "--frames", "1"], "--frames must be at least 2"),
])
def test_bad_recalibrate_arguments_are_one_line_errors(
        tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture,
        make_checkpoint) -> None:
    checkpoint = make_checkpoint(input_size=SIZE)
    assert main(["recalibrate", "--checkpoint", str(checkpoint), *args,
                 "--out", str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_recalibrating_onto_the_input_file_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, make_checkpoint) -> None:
    checkpoint = make_checkpoint(input_size=SIZE)
    assert main(["recalibrate", "--checkpoint", str(checkpoint), "--bag",
                 str(_dark_bag(tmp_path)), "--out", str(checkpoint)]) == 2
    assert "--out must differ from --checkpoint" in capsys.readouterr().err
