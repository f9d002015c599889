"""The node benchmarks (``experiments/bench_node.py``), run for real but short.

The node runs in its own process on a small random checkpoint; frames cross real DDS. What is
checked is what the benchmark reports and that its accounting holds, never how fast anything
was: speed is measured by the benchmark itself (docs/log/node.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="the ROS 2 client library (ros-rclpy wheels) is not installed")

pytestmark = [pytest.mark.dds, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_node.py"
SMALL = ["--camera", "160x120", "--input-size", "64x96", "--backend", "torch", "--threads", "1"]


def _bench(tmp_path: Path, checkpoint: Path, *args: str, small: list[str] = SMALL) -> dict:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(SCRIPT), *args, *small, "--checkpoint", str(checkpoint),
           "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_overhead_benchmark_times_every_frame_and_splits_the_overhead(
        tmp_path: Path, make_checkpoint) -> None:
    result = _bench(tmp_path, make_checkpoint(input_size=(64, 96)), "overhead", "--frames", "8",
                    "--warmup", "2", "--gap", "0.02")
    assert result["node_exit_code"] == 0
    assert result["frames"] == 8 and result["answered"] == 8  # one at a time: every one answered
    e2e, inference = result["end_to_end"], result["inference"]
    assert 0 < inference["p50_ms"] < e2e["p50_ms"]  # the round trip contains the inference
    assert result["overhead"]["p50_ms"] > 0
    assert set(result["overhead_parts"]) == {"transport_in", "node_work", "transport_out"}


def test_flat_benchmark_accounts_for_every_frame_sent(tmp_path: Path, make_checkpoint) -> None:
    result = _bench(tmp_path, make_checkpoint(input_size=(64, 96)), "flat", "--duration", "2",
                    "--rate", "10", "--width", "0.5")
    assert result["node_exit_code"] == 0
    assert result["sent"] >= 1 and result["answered"] >= 1
    assert result["answered"] + result["not_answered"] == result["sent"]
    assert sum(w["answered"] for w in result["windows"]) == result["answered"]
    assert float(result["node_status"]["width"]) == 0.5  # diagnostics values are strings


def test_camera_benchmark_runs_a_camera_process_against_the_launch_set_up(
        tmp_path: Path, make_checkpoint) -> None:
    small = ["--camera", "160x120", "--input-sizes", "64x96,48x64", "--backend", "torch",
             "--threads", "1"]
    result = _bench(tmp_path, make_checkpoint(input_size=(64, 96)), "camera", "--duration", "2",
                    "--rate", "10", "--camera-profile", "package", small=small)
    assert result["node_exit_code"] == 0
    assert result["sent"] == 20 and 1 <= result["answered"] <= 20
    assert result["answered_share"] == round(result["answered"] / 20, 4)
    assert result["node_profile"] == "package" and result["camera_profile"] == "package"
    assert result["input_sizes"] == [[64, 96], [48, 64]]
    # the statuses seen while streaming name operating points at the configured sizes
    assert result["operating_points_seconds"]
    assert all(p.endswith(("@64x96", "@48x64")) for p in result["operating_points_seconds"])
    assert result["node_lost_frames"] == "0" and result["loss_warning_after_s"] is None
    assert result["message_bytes"] == 160 * 120 * 3
    assert set(result["sysctl"]) >= {"net.core.rmem_default", "net.ipv4.ipfrag_time"}
