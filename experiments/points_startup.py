"""Start-up time and memory of the node with several operating points (issue 13, part 1).

Starts ``slimseg_node`` as a process with the given ``input_sizes`` and engine cache, times
until it logs ``ready:`` (every point built and warmed), reads its peak resident memory
(``VmHWM``) then, and stops it with SIGINT. Run it twice on one cache directory: the first start
fills the cache (cold), the second finds it warm.

    .venv/bin/python experiments/points_startup.py --sizes 360x480,270x360,180x240 \
        --cache /tmp/slimseg_points_cache --backend auto --runs 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from slimseg_ros.sizes import parse_sizes


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def start_once(sizes: str, cache: str, backend: str, timeout_s: float) -> dict:
    flat = [v for size in parse_sizes(sizes) for v in size]
    exe = Path(sys.executable).with_name("slimseg_node")
    cmd = [str(exe), "--ros-args", "-r", "__node:=slimseg_startup_probe",
           "-p", f"input_sizes:={json.dumps(flat)}", "-p", f"engine_cache_dir:={cache}",
           "-p", f"backend:={backend}"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready_s, rss, lines = None, None, []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "ready:" in line:
                ready_s = time.monotonic() - t0
                rss = _peak_rss_mb(proc.pid)
                break
            if time.monotonic() - t0 > timeout_s:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"ready_s": None if ready_s is None else round(ready_s, 1),
            "peak_rss_mb": None if rss is None else round(rss, 1),
            "loadavg_1min": round(os.getloadavg()[0], 2),
            "log_tail": lines[-3:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="360x480,270x360,180x240")
    p.add_argument("--cache", required=True)
    p.add_argument("--backend", default="auto")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    for i in range(args.runs):
        result = start_once(args.sizes, args.cache, args.backend, args.timeout)
        print(json.dumps({"run": i + 1, "sizes": args.sizes, "backend": args.backend, **result}),
              flush=True)


if __name__ == "__main__":
    main()
