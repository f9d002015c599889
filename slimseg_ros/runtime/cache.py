"""The engine cache: one verified artifact per (model, width, input size, precision, format).

Layout under the cache root (the node's ``engine_cache_dir``)::

    manifest.json                                  one record per artifact (see below)
    onnx/<model sha256[:16]>/w0.5_360x480_fp32_nearest.onnx
    tensorrt/<model sha256[:16]>/w0.5_360x480_fp16_nearest.ep

An artifact's *slot* (its path) names what it computes; its *key* adds everything it was built
with (library versions, GPU, L4T release). The manifest stores the full key, the artifact's
sha256 and size. An artifact is loaded only when its manifest record matches the current key
exactly and its bytes hash to the recorded sha256; anything else (a version change, a different
GPU, a truncated or edited file, a file without a record, an unreadable manifest, a file that
fails to load) is rebuilt with a warning, never loaded. Writes are atomic: the builder writes a
temporary file in the same directory, which is renamed into place and recorded in the manifest
under a file lock, so concurrent builders (the node and ``slimseg export``) never leave a record
that disagrees with its file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Tuple, TypeVar

import torch
from torch import nn

from ..model.checkpoint import file_sha256
from ..sizes import format_size

__all__ = [
    "ArtifactKey",
    "CacheOutcome",
    "EngineCache",
    "default_cache_dir",
    "model_fingerprint",
    "MANIFEST_NAME",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
_EXTENSIONS = {"onnx": ".onnx", "tensorrt": ".ep"}
T = TypeVar("T")
# What a backend gives the cache for one width: the key, a builder and a loader.
ArtifactPlan = Tuple["ArtifactKey", Callable[[Path], None], Callable[[Path], Any]]


def default_cache_dir() -> Path:
    """``$SLIMSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/slimseg_ros``, else ``~/.cache/slimseg_ros``.

    Persistent on purpose: ``/tmp`` is wiped at boot, and a TensorRT rebuild takes minutes.
    """
    explicit = os.environ.get("SLIMSEG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slimseg_ros"


def model_fingerprint(model: nn.Module, model_path: str | os.PathLike[str] | None) -> str:
    """sha256 of the checkpoint file, or of the weights and config when there is no file.

    The file hash is the contract (it is what an operator can check with ``sha256sum``); the
    in-memory hash covers randomly initialised models used by benchmarks and tests.
    """
    if model_path is not None:
        return file_sha256(model_path)
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


@dataclass(frozen=True)
class ArtifactKey:
    """Everything an artifact depends on.

    Attributes:
        fmt: ``onnx`` or ``tensorrt``.
        model_sha256: :func:`model_fingerprint` of the checkpoint.
        width, input_size, precision, upsample: what the artifact computes.
        toolchain: every other thing that must match for the artifact to be valid, as strings
            (library versions, GPU name and compute capability, L4T release, graph revision).
            Each backend decides what belongs here (see ``docs/backends.md``).
    """

    fmt: str
    model_sha256: str
    width: float
    input_size: tuple[int, int]
    precision: str
    upsample: str
    toolchain: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fmt not in _EXTENSIONS:
            raise ValueError(
                f"artifact format must be one of {sorted(_EXTENSIONS)}, got {self.fmt!r}"
            )
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "toolchain", {str(k): str(v) for k, v in self.toolchain.items()})

    @property
    def slot(self) -> str:
        """Relative path of the artifact: what it computes, not what built it."""
        name = (f"w{self.width:g}_{format_size(self.input_size)}_{self.precision}_"
                f"{self.upsample}{_EXTENSIONS[self.fmt]}")
        return f"{self.fmt}/{self.model_sha256[:16]}/{name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fmt": self.fmt,
            "model_sha256": self.model_sha256,
            "width": self.width,
            "input_size": list(self.input_size),
            "precision": self.precision,
            "upsample": self.upsample,
            "toolchain": dict(sorted(self.toolchain.items())),
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def differences(self, recorded: Mapping[str, Any]) -> list[str]:
        """Human-readable fields where a recorded key differs from this one."""
        mine = self.to_dict()
        diffs = []
        for name in sorted(set(mine) | set(recorded)):
            if name == "toolchain":
                continue
            if mine.get(name) != recorded.get(name):
                diffs.append(f"{name} {recorded.get(name)!r} -> {mine.get(name)!r}")
        old = recorded.get("toolchain") or {}
        new = mine["toolchain"]
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                diffs.append(f"{name} {old.get(name, 'absent')} -> {new.get(name, 'absent')}")
        return diffs


@dataclass(frozen=True)
class CacheOutcome:
    """What the cache did for one artifact (reported by the backends and ``slimseg export``)."""

    path: Path
    status: str  # "hit" | "built" | "rebuilt"
    reason: str  # why it was (re)built; empty on a hit
    size_bytes: int
    build_s: float  # 0.0 on a hit

    def describe(self, label: str) -> str:
        if self.status == "hit":
            return f"{label}: cache hit {self.path.name} ({self.size_bytes / 1e6:.1f} MB)"
        why = f" ({self.reason})" if self.reason else ""
        return (f"{label}: {self.status} {self.path.name} in {self.build_s:.1f} s "
                f"({self.size_bytes / 1e6:.1f} MB){why}")


class EngineCache:
    """A directory of verified per-width artifacts with a manifest.

    Args:
        root: the cache directory (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    # -- manifest --------------------------------------------------------------------------

    def read_manifest(self) -> dict[str, dict[str, Any]]:
        """slot -> record; an unreadable manifest counts as empty (with a warning)."""
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            logger.warning("engine cache: cannot read %s (%s); rebuilding what is needed",
                           self.manifest_path, exc)
            return {}
        try:
            doc = json.loads(text)
            entries = doc["entries"]
            if doc.get("format") != MANIFEST_FORMAT or not isinstance(entries, dict):
                raise ValueError(f"unknown manifest format {doc.get('format')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("engine cache: %s is corrupt (%s); its artifacts will be rebuilt",
                           self.manifest_path, exc)
            return {}
        return entries

    def _write_manifest(self, entries: Mapping[str, Any]) -> None:
        doc = {"format": MANIFEST_FORMAT, "entries": dict(sorted(entries.items()))}
        _atomic_write_text(self.manifest_path, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise manifest read-modify-write across processes (advisory; POSIX only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock, writes stay atomic
            yield
            return
        with open(self.root / ".manifest.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lookup / store ---------------------------------------------------------------------

    def verify(self, key: ArtifactKey) -> tuple[Path | None, str]:
        """(path, "") for a valid artifact, else (None, why it cannot be used)."""
        path = self.root / key.slot
        record = self.read_manifest().get(key.slot)
        if not path.is_file():
            return None, "not built yet" if record is None else "the artifact file is missing"
        if record is None:
            return None, "the file has no manifest record, so it cannot be verified"
        diffs = key.differences(record.get("key") or {})
        if diffs:
            return None, "built with a different toolchain: " + "; ".join(diffs)
        actual = file_sha256(path)
        if actual != record.get("sha256"):
            return None, (f"its sha256 {actual[:12]}... differs from the manifest's "
                          f"{str(record.get('sha256'))[:12]}... (corrupt or modified)")
        return path, ""

    def store(self, key: ArtifactKey, build: Callable[[Path], None]) -> tuple[Path, float]:
        """Build into a temporary file, then move it into place and record it atomically.

        ``build(tmp_path)`` writes the artifact to ``tmp_path`` (same directory and suffix as
        the final file). Returns (path, build seconds). On failure nothing is left behind and
        the manifest is unchanged.
        """
        final = self.root / key.slot
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix,
                                        dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            start = time.perf_counter()
            build(tmp)
            build_s = time.perf_counter() - start
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise RuntimeError(f"building {key.slot} produced no file")
            record = {
                "key": key.to_dict(),
                "key_digest": key.digest,
                "sha256": file_sha256(tmp),
                "size_bytes": tmp.stat().st_size,
                "build_s": round(build_s, 3),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            with self._locked():
                os.replace(tmp, final)
                entries = self.read_manifest()
                entries[key.slot] = record
                self._write_manifest(entries)
        finally:
            if tmp.exists():
                tmp.unlink()
        return final, build_s

    def forget(self, key: ArtifactKey) -> None:
        """Drop an artifact and its record (used before a rebuild of a bad artifact)."""
        with self._locked():
            entries = self.read_manifest()
            if entries.pop(key.slot, None) is not None:
                self._write_manifest(entries)
            with contextlib.suppress(FileNotFoundError):
                (self.root / key.slot).unlink()

    def get_or_build(self, key: ArtifactKey, build: Callable[[Path], None],
                     load: Callable[[Path], T], *, force: bool = False) -> tuple[T, CacheOutcome]:
        """Load a verified artifact, or (re)build it; every rebuild of a bad one is warned about.

        Args:
            key: the artifact's complete key.
            build: writes the artifact to the path it is given.
            load: turns a verified artifact file into something runnable; if it raises, the
                artifact is treated as corrupt and rebuilt once.
            force: rebuild even when a valid artifact exists.
        """
        path, why = (None, "rebuild requested") if force else self.verify(key)
        if path is not None:
            try:
                return load(path), CacheOutcome(path, "hit", "", path.stat().st_size, 0.0)
            except Exception as exc:  # a file that hashes right but does not load is unusable
                why = f"it failed to load ({type(exc).__name__}: {exc})"
        fresh = why == "not built yet"
        if not fresh and not force:
            logger.warning("engine cache: %s: %s; rebuilding it, the old file is not used",
                           key.slot, why)
        if not fresh:
            self.forget(key)
        path, build_s = self.store(key, build)
        outcome = CacheOutcome(path, "built" if fresh else "rebuilt", "" if fresh else why,
                               path.stat().st_size, build_s)
        return load(path), outcome

    def get_or_build_widths(
        self, widths: Iterable[float], plan: Callable[[float], ArtifactPlan], label: str,
        *, force: bool = False,
    ) -> tuple[dict[float, Any], dict[float, CacheOutcome], list[str]]:
        """:meth:`get_or_build` for each width; ``plan(width)`` gives its (key, build, load).

        Returns:
            (width -> loaded artifact, width -> outcome, one note per width: "LABEL w0.5 ...").
        """
        loaded: dict[float, Any] = {}
        outcomes: dict[float, CacheOutcome] = {}
        notes: list[str] = []
        for width in widths:
            key, build, load = plan(float(width))
            loaded[float(width)], outcome = self.get_or_build(key, build, load, force=force)
            outcomes[float(width)] = outcome
            notes.append(outcome.describe(f"{label} w{width:g}"))
        return loaded, outcomes, notes


def _atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file atomically (temporary file in the same directory + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
