"""The training loop end to end on synthetic scenes, and the recipe/config machinery."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slimseg_ros.eval.scoring import score_engine
from slimseg_ros.model import ModelConfig, SlimSegNet, load_checkpoint
from slimseg_ros.runtime import load_engine
from slimseg_ros.train.config import LossConfig, load_train_config
from slimseg_ros.train.loop import poly_lr, train
from slimseg_ros.train.step import slimseg_step

REPO = Path(__file__).resolve().parents[1]


def _synthetic_config(tmp_path: Path, *extra: str):
    return load_train_config(None, [
        "model.num_classes=4", "model.head_channels=32", "data.dataset=synthetic",
        "data.crop_size=[64,64]", "data.scale_range=[0.8,1.2]", "data.batch_size=4",
        "data.workers=0", "data.val_size=[64,64]", "data.options={n: 16, size: 64}",
        "steps=20", "val_every=0", "optim.lr=0.003", "optim.warmup_steps=2", "threads=1",
        f"out={tmp_path / 'run'}", *extra,
    ])


@pytest.mark.slow
def test_twenty_steps_lower_the_loss_and_write_a_checkpoint_that_evaluates(tmp_path: Path) -> None:
    cfg = _synthetic_config(tmp_path)
    result = train(cfg, progress=False)
    assert result.steps == 20 and len(result.losses) == 20
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5])
    model, meta = load_checkpoint(result.last_checkpoint)
    assert meta.widths == cfg.model.widths and meta.training["steps"] == 20
    assert set(meta.training["val"]) == {"0.25", "0.5", "0.75", "1.0"}
    engine = load_engine(result.last_checkpoint, backend="torch", device="cpu", warmup_repeats=1)
    from slimseg_ros.data import build_dataset
    val = build_dataset("synthetic", None, "val", n=4, size=64)
    results, count = score_engine(engine, (val.load(i) for i in range(4)), engine.widths,
                                  meta.class_names)
    assert count == 4 and all(0.0 <= r["miou"] <= 1.0 for r in results.values())
    assert set(results) == {"0.25", "0.5", "0.75", "1.0"}


@pytest.mark.slow
def test_resume_continues_from_the_saved_step(tmp_path: Path) -> None:
    first = train(_synthetic_config(tmp_path, "steps=4", "checkpoint_every=2"), progress=False)
    assert first.steps == 4
    again = train(_synthetic_config(tmp_path, "steps=6", "checkpoint_every=2"), progress=False)
    assert again.steps == 6 and len(again.losses) == 2  # only the two missing steps ran


@pytest.mark.slow
def test_a_resumed_run_keeps_the_time_it_already_spent(tmp_path: Path) -> None:
    first = train(_synthetic_config(tmp_path, "steps=2"), progress=False)
    state_path = first.out_dir / "train_state.pt"
    state = torch.load(state_path, weights_only=True)
    assert state["elapsed_s"] > 0
    state["elapsed_s"] = 3600.0  # as if the first session had trained for an hour
    torch.save(state, state_path)
    # 30 minutes in all are long spent: the resumed run stops at once instead of starting a
    # fresh budget (and, with it, a fresh learning-rate schedule)
    again = train(_synthetic_config(tmp_path, "steps=6", "time_limit_min=30"), progress=False)
    assert again.steps == 2 and again.losses == []
    assert torch.load(state_path, weights_only=True)["elapsed_s"] >= 3600.0
    _, meta = load_checkpoint(again.last_checkpoint)
    assert meta.training["wall_clock_min"] >= 60.0


def test_single_width_training_leaves_other_widths_untouched(tmp_path: Path) -> None:
    cfg = _synthetic_config(tmp_path, "train_widths=[0.5]", "steps=2")
    result = train(cfg, progress=False)
    model, _ = load_checkpoint(result.last_checkpoint)
    fresh = SlimSegNet(cfg.model)
    stem_bn = model.net.stem.bn
    assert not torch.equal(stem_bn[1].running_mean, fresh.net.stem.bn[1].running_mean)
    assert torch.equal(stem_bn[0].running_mean, fresh.net.stem.bn[0].running_mean)
    assert set(result.history[-1]["widths"]) == {"0.5"}


@pytest.mark.parametrize("kd", ["none", "inplace", "stepwise"])
def test_step_reports_every_width_and_kd_only_below_the_widest(kd: str) -> None:
    torch.manual_seed(0)
    model = SlimSegNet(ModelConfig(num_classes=3, head_channels=16)).train()
    images = torch.randn(2, 3, 32, 32)
    labels = torch.randint(0, 3, (2, 32, 32))
    report = slimseg_step(model, images, labels, model.widths, LossConfig(kd=kd))
    assert set(report) == set(model.widths)
    assert "kd" not in report[1.0]
    assert all(("kd" in report[w]) == (kd != "none") for w in (0.25, 0.5, 0.75))
    assert all(p.grad is not None for p in model.parameters() if p.ndim > 1)


def test_recipe_loads_and_overrides_apply() -> None:
    cfg = load_train_config(REPO / "config" / "train_camvid.yaml",
                            ["optim.lr=0.01", "loss.kd=inplace"])
    assert cfg.optim.lr == 0.01 and cfg.loss.kd == "inplace"
    assert cfg.model.widths == (0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=1", "unknown key.*optim.lrr"),
    ("loss.kd=sideways", "loss.kd must be one of"),
    ("train_widths=[0.3]", "not model widths"),
    ("steps", "section.key=value"),
    ("loss.affinity_weight=1", "loss.affinity_weight was removed.*loss.ka_affinity_weight"),
])
def test_bad_overrides_are_rejected_by_name(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_train_config(REPO / "config" / "train_camvid.yaml", [override])


def test_poly_schedule_warms_up_then_decays_to_zero_also_by_time() -> None:
    assert poly_lr(0, 100, 1.0, 0.9, 10) == pytest.approx(0.1)
    assert poly_lr(10, 100, 1.0, 0.9, 10) == pytest.approx(1.0)
    assert poly_lr(100, 100, 1.0, 0.9, 10) == 0.0
    assert poly_lr(20, 100, 1.0, 0.9, 10, time_fraction=1.0) == 0.0


def test_extra_terms_join_every_width_and_are_reported() -> None:
    torch.manual_seed(0)
    model = SlimSegNet(ModelConfig(num_classes=3, head_channels=16)).train()
    seen = []

    def extra(width, logits, decoded):
        seen.append((width, tuple(logits.shape[-2:]), decoded.shape[1]))
        return {"probe": logits.mean() * 0.0 + 0.5}

    report = slimseg_step(model, torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32)),
                          model.widths, LossConfig(kd="stepwise"), extra_terms=extra)
    assert [w for w, _, _ in seen] == [1.0, 0.75, 0.5, 0.25]
    assert all(size == (32, 32) for _, size, _ in seen)  # logits at label size
    assert all(r["probe"] == 0.5 for r in report.values())

@pytest.mark.slow
def test_training_can_start_from_a_checkpoint_and_refuses_another_network(
        tmp_path: Path) -> None:
    first = train(_synthetic_config(tmp_path / "a", "steps=3"), progress=False)
    # lr 0: the run must end with exactly the weights it started from
    cfg = _synthetic_config(tmp_path / "b", "steps=2", "optim.lr=0.0",
                            f"init_checkpoint={first.last_checkpoint}")
    second = train(cfg, progress=False)
    start, _ = load_checkpoint(first.last_checkpoint)
    end, meta = load_checkpoint(second.last_checkpoint)
    weights = [k for k in start.state_dict() if "running" not in k and "num_batches" not in k]
    for key in weights:
        torch.testing.assert_close(end.state_dict()[key], start.state_dict()[key])
    assert meta.training["init_checkpoint"] == str(first.last_checkpoint)
    other = _synthetic_config(tmp_path / "c", "steps=1", "model.head_channels=16",
                              f"init_checkpoint={first.last_checkpoint}")
    with pytest.raises(ValueError, match="is a different network"):
        train(other, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "workers", "group"), [
    (signal.SIGINT, 0, False), (signal.SIGTERM, 0, False),
    # Ctrl-C in a terminal and systemd's stop signal the whole process group: the DataLoader
    # worker gets the signal too, and must not die of it (torch would then end the run at once)
    (signal.SIGINT, 1, True), (signal.SIGTERM, 1, True)])
def test_a_signal_stops_training_after_the_step_with_its_state_saved(
        tmp_path: Path, sig: signal.Signals, workers: int, group: bool) -> None:
    run = tmp_path / "run"
    args = [sys.executable, "-m", "slimseg_ros.cli.main", "train", "--config",
            str(REPO / "config" / "train_camvid.yaml"), "--no-progress",
            "model.num_classes=4", "model.head_channels=32", "data.dataset=synthetic",
            "data.crop_size=[64,64]", "data.batch_size=2", f"data.workers={workers}",
            "data.val_size=[64,64]", "data.options={n: 8, size: 64}", "val_every=2",
            "val_images=2", "checkpoint_every=1000", "threads=1", f"out={run}"]
    proc = subprocess.Popen(args + ["steps=100000"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            start_new_session=group)
    lines = []
    for line in proc.stdout:  # the first validation proves the loop is running
        lines.append(line)
        if line.startswith("step 2:"):
            break
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 128 + sig, output
    stopped = re.search(rf"stopped by {sig.name} at step (\d+) of 100000", output)
    assert stopped, output
    assert "Traceback" not in output
    saved = torch.load(run / "train_state.pt", weights_only=True)
    assert saved["step"] == int(stopped.group(1)) >= 2
    # the same command resumes there (here with a total that makes it finish one step later)
    again = subprocess.run(args + [f"steps={saved['step'] + 1}"], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming from step {saved['step']}" in again.stdout
