"""Link the package's ROS files into a Python prefix, as ``colcon build --symlink-install`` does.

``make venv`` installs slimseg_ros editable (``pip install -e .``), which puts no ``data_files``
anywhere; the ROS 2 tools find a package only through ``<prefix>/share/ament_index``,
``<prefix>/share/slimseg_ros`` and ``<prefix>/lib/slimseg_ros``. This links every file of
setup.py's ``DATA_FILES`` there (so an edit of the launch file or the config is live at once) and
removes links of files that no longer exist. Then ``AMENT_PREFIX_PATH=<prefix>`` finds it::

    python scripts/link_ros_files.py --prefix .venv
    AMENT_PREFIX_PATH=$PWD/.venv .venv/bin/ros2 launch slimseg_ros seg.launch.py
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_files() -> list[tuple[str, list[str]]]:
    """setup.py's ``DATA_FILES`` (globbed from the repository root)."""
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        return runpy.run_path(str(ROOT / "setup.py"), run_name="slimseg_setup")["DATA_FILES"]
    finally:
        os.chdir(here)


def link(prefix: Path) -> list[Path]:
    """Link every data file under ``prefix``; the links made."""
    made = []
    for dest, sources in data_files():
        folder = prefix / dest
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {Path(src).name for src in sources}
        for old in folder.iterdir():  # a file removed from the repository
            if old.is_symlink() and old.name not in wanted and str(
                    os.readlink(old)).startswith(str(ROOT)):
                old.unlink()
        for src in sources:
            target = folder / Path(src).name
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(ROOT / src)
            made.append(target)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default=sys.prefix,
                        help="install prefix (default: %(default)s)")
    args = parser.parse_args()
    made = link(Path(args.prefix).resolve())
    print(f"linked {len(made)} ROS files of slimseg_ros into {Path(args.prefix).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
