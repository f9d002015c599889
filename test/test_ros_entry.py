"""The node executables as processes, before and around the node itself: signals during the
start-up imports, the stop request of the spin loop, the heap cap. No DDS traffic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from slimseg_ros.ros.process import StopRequest


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


# Runs the entry point with an import hook that says when the first heavy import starts and then
# holds it, so the signal arrives while the start-up imports are under way on any machine.
_HELD_IMPORT = textwrap.dedent("""
    import importlib.abc, runpy, sys, time

    class HoldHeavyImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in ("numpy", "rclpy", "torch"):
                sys.meta_path.remove(self)
                print("importing", name, flush=True)
                time.sleep(30)  # the signal ends this; without a handler the import goes on
            return None

    sys.meta_path.insert(0, HoldHeavyImport())
    sys.argv = ["slimseg_node", "slimseg_node", "--ros-args", "-r", "__node:=slimseg_importing"]
    runpy.run_module("slimseg_ros.ros.entry", run_name="__main__")
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_start_up_imports_exits_0_without_a_traceback(sig) -> None:
    """`ros2 launch` may stop a node that is still importing torch: that is a clean stop."""
    proc = subprocess.Popen([sys.executable, "-c", _HELD_IMPORT], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env())
    try:
        first = proc.stdout.readline()
        assert first.startswith(b"importing "), first
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)  # well inside the held import's 30 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"Traceback" not in out and b"KeyboardInterrupt" not in out


def test_entry_names_its_executables() -> None:
    done = subprocess.run([sys.executable, "-m", "slimseg_ros.ros.entry", "nope"],
                          capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 2
    assert "slimseg_node" in done.stderr and "slimseg_lifecycle_node" in done.stderr


def test_a_stop_request_is_a_flag_and_a_stuck_stop_ends_anyway() -> None:
    """Ctrl-C under ``ros2 launch`` arrives twice (terminal and launch): the second signal must
    not cut the clean stop short; a stop that hangs ends the process after the grace time."""
    code = textwrap.dedent("""
        import os, signal, time
        from slimseg_ros.ros.process import StopRequest
        stop = StopRequest(force_after_s=1.0).install()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the stop is under way
        time.sleep(0.1)
        print("requested", stop.requested, stop.signal == signal.SIGTERM, flush=True)
        time.sleep(10)  # a stop that never finishes
        print("still running", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=_env())
    assert done.returncode == 0
    assert done.stdout.split() == ["requested", "True", "True"]
    request = StopRequest()
    assert not request.requested
    request.set()
    assert request.requested


def test_huge_frames_do_not_leave_the_heap_larger() -> None:
    """Decoding a few 4K PNGs left a node 45 MB larger for good (glibc's growing mmap
    threshold); the node's processes fix the threshold."""
    code = textwrap.dedent("""
        import sys, threading
        import numpy as np
        from slimseg_ros.data.pixels import compressed_to_rgb, encode_compressed
        from slimseg_ros.ros.process import limit_heap_growth
        if sys.argv[1] == "capped":
            assert limit_heap_growth()
        def rss_mb():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS"):
                    return int(line.split()[1]) / 1024
        rgb = np.random.default_rng(0).integers(0, 256, (2160, 3840, 3), dtype=np.uint8)
        big = encode_compressed(rgb, "png")
        small = encode_compressed(rgb[:480, :640].copy(), "png")
        del rgb
        def decode(data, n):
            for _ in range(n):
                compressed_to_rgb("png", data)
        def in_thread(data, n):  # the node's worker is a thread (its own malloc arena)
            t = threading.Thread(target=decode, args=(data, n)); t.start(); t.join()
        in_thread(small, 10)
        before = rss_mb()
        in_thread(big, 4)
        in_thread(small, 10)
        print(round(rss_mb() - before, 1))
    """)
    if not sys.platform.startswith("linux"):
        pytest.skip("RSS from /proc and glibc's mallopt: Linux only")
    # (run with "default" instead of "capped", the same script grew by 45 MB here)
    done = subprocess.run([sys.executable, "-c", code, "capped"], capture_output=True,
                          text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) < 10.0
