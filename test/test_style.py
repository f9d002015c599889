"""The code style is checked, not hoped for: ``ruff check`` with the repository's ruff.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKED = ("slimseg_ros", "test", "scripts", "experiments", "tools")


def test_ruff_finds_nothing_in_the_package_tests_scripts_experiments_and_tools() -> None:
    # ruff comes with requirements/test.txt: a missing tool is a set-up defect, not a skip
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *CHECKED], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
