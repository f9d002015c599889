"""Seeding helpers that make DataLoader pipelines reproducible, with or without workers."""

from __future__ import annotations

import random
import signal

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """Return a torch generator for ``DataLoader(generator=...)`` (shuffling, worker seeds)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _reseed_transforms(dataset: object, seed: int, depth: int = 0) -> None:
    """Reseed every transform with a ``reseed`` method inside (possibly wrapped) datasets."""
    if depth > 8 or dataset is None:
        return
    transform = getattr(dataset, "transform", None)
    if transform is not None and hasattr(transform, "reseed"):
        transform.reseed(seed)
    # torch Subset / ConcatDataset wrappers.
    _reseed_transforms(getattr(dataset, "dataset", None), seed, depth + 1)
    for child in getattr(dataset, "datasets", ()) or ():
        _reseed_transforms(child, seed, depth + 1)


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: derive every generator of a worker from torch's seed.

    torch gives worker ``i`` the seed ``base_seed + i``, where ``base_seed`` is drawn from the
    DataLoader's generator at each epoch; so with ``generator=make_generator(seed)`` a run is
    reproducible for a fixed ``num_workers`` and every epoch sees new augmentations.

    OpenCV's thread count is deliberately left alone: ``cv2.setNumThreads`` in a forked worker
    can block forever on the parent's thread pool (seen here once torch.set_num_threads ran in
    the parent). To limit OpenCV threads, call it in the main process before the loader starts.

    Workers ignore SIGINT and SIGTERM: Ctrl-C and systemd's stop signal the whole process group,
    and a worker killed by one makes torch end the main process at once, before the training
    loop can save its state (:mod:`slimseg_ros.train.stop`). The main process owns stopping;
    workers leave when the loader shuts them down or torch's watchdog sees their parent gone.
    """
    info = torch.utils.data.get_worker_info()
    if info is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32 if info is None else info.seed % 2**32
    random.seed(seed)
    np.random.seed(seed)
    if info is not None:
        _reseed_transforms(info.dataset, seed)
