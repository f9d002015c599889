"""Data-parallel training through torchrun (gloo on the CPU, NCCL on GPUs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from slimseg_ros.model import load_checkpoint
from slimseg_ros.train.loop import _average_gradients

pytestmark = pytest.mark.slow  # two processes each

REPO = Path(__file__).resolve().parents[1]


def _worker(rank: int, world: int, out: str) -> None:
    # a file rendezvous: no port to collide with another run's
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank,
                            world_size=world)
    layer = torch.nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.full((1, 2), float(rank + 1))  # rank 0: 1, rank 1: 2
    _average_gradients(list(layer.parameters()), world)
    torch.save(layer.weight.grad, f"{out}/grad{rank}.pt")
    dist.destroy_process_group()


def test_gradients_are_averaged_across_processes(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        grad = torch.load(tmp_path / f"grad{rank}.pt", weights_only=True)
        torch.testing.assert_close(grad, torch.full((1, 2), 1.5))


def test_torchrun_two_processes_train_and_write_one_checkpoint(tmp_path: Path) -> None:
    cmd = [  # --standalone: the rendezvous takes a free port (none derived from a pid)
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "slimseg_ros.cli.main", "train",
        "--config", str(REPO / "config" / "train_camvid.yaml"), "--no-progress",
        "--out", str(tmp_path / "run"), "model.num_classes=4", "model.head_channels=16",
        "data.dataset=synthetic", "data.options={n: 8, size: 48}", "data.crop_size=[48,48]",
        "data.batch_size=2", "data.workers=0", "data.val_size=[48,48]", "steps=2",
        "val_every=0", "threads=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("trained 2 steps") == 2
    _, meta = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert meta.training["steps"] == 2
