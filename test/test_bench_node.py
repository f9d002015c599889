"""The node benchmarks (``python -m slimseg_ros.ros.bench_node``), run for real but short.

The node runs in its own process on a small random checkpoint; frames cross real DDS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

from slimseg_ros.ros.harness import isolate_ros_domain, make_test_checkpoint  # noqa: E402

isolate_ros_domain()

SMALL = ["--camera", "160x120", "--input-size", "64x96", "--backend", "torch", "--threads", "1"]


def _bench(tmp_path: Path, *args: str) -> dict:
    checkpoint = make_test_checkpoint(tmp_path / "model.safetensors", input_size=(64, 96))
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "slimseg_ros.ros.bench_node", *args, *SMALL,
           "--checkpoint", str(checkpoint), "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_overhead_benchmark_times_every_frame_and_splits_the_overhead(tmp_path: Path) -> None:
    result = _bench(tmp_path, "overhead", "--frames", "8", "--warmup", "2", "--gap", "0.02")
    assert result["node_exit_code"] == 0
    assert result["frames"] == 8 and result["answered"] == 8
    e2e, inference = result["end_to_end"], result["inference"]
    assert 0 < inference["p50_ms"] < e2e["p50_ms"]  # the round trip contains the inference
    assert result["overhead"]["p50_ms"] > 0
    assert set(result["overhead_parts"]) == {"transport_in", "node_work", "transport_out"}


def test_flat_benchmark_accounts_for_every_frame_sent(tmp_path: Path) -> None:
    result = _bench(tmp_path, "flat", "--duration", "2", "--rate", "10", "--width", "0.5")
    assert result["node_exit_code"] == 0
    assert 15 <= result["sent"] <= 21  # 2 s at 10 Hz, started on the period grid
    assert result["answered"] + result["not_answered"] == result["sent"]
    assert result["answered"] >= 1 and result["windows"][0]["answered"] == result["answered"]
    assert float(result["node_status"]["width"]) == 0.5  # diagnostics values are strings
