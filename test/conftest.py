"""Shared test set-up.

Tests run on 2-core machines, often beside other work: one torch thread per test process and a
passive OpenMP wait policy keep them from spinning against each other.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

CAMVID_ROOT = os.environ.get(
    "SLIMSEG_CAMVID", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "camvid")
)


@pytest.fixture(scope="session")
def camvid_root() -> str:
    """The development copy of CamVid; tests that need it skip when it is absent."""
    if not os.path.isdir(os.path.join(CAMVID_ROOT, "val")):
        pytest.skip(f"CamVid not found at {CAMVID_ROOT} (set SLIMSEG_CAMVID)")
    return CAMVID_ROOT


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory):
    """``make_checkpoint(config=None, input_size=(64, 64), seed=0)`` -> a random model's file.

    One helper for every test that needs "some checkpoint" (default: the shipped architecture,
    11 classes, random weights); files are cached per arguments for the session.
    """
    from slimseg_ros.model.checkpoint import save_random_checkpoint

    made: dict = {}
    root = tmp_path_factory.mktemp("checkpoints")

    def make(config=None, input_size=(64, 64), seed=0):
        key = (config, tuple(input_size), seed)
        if key not in made:
            made[key] = save_random_checkpoint(root / f"random_{len(made)}.safetensors", config,
                                               input_size, seed)
        return made[key]

    return make
