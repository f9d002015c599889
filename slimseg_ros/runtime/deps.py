"""Optional dependencies of the deployment backends, imported only when asked for.

``onnx``/``onnxscript`` (ONNX export), ``onnxruntime`` (ONNX Runtime) and ``torch_tensorrt``
(Torch-TensorRT) are optional: the package works with torch alone. When a backend that needs one
of them is requested explicitly and it is missing, :class:`BackendUnavailableError` says in one
sentence what is missing and how to install it on a Jetson.

This module also reports the versions and the hardware that an engine depends on (the engine
cache keys them).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "BackendUnavailableError",
    "JETSON_WHEEL_INDEX",
    "import_onnx_exporter",
    "import_onnxruntime",
    "import_torch_tensorrt",
    "module_version",
    "onnxruntime_providers",
    "cuda_device_name",
    "jetson_release",
]

# NVIDIA's Jetson wheel index for JetPack 6.x (CUDA 12.6); JetPack 7 uses .../jp7/cu130 instead.
JETSON_WHEEL_INDEX = "https://pypi.jetson-ai-lab.io/jp6/cu126"

# import name -> distribution names that may provide it (the GPU build of ONNX Runtime is a
# different distribution with the same import name)
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch_tensorrt": ("torch_tensorrt", "torch-tensorrt"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_libs"),
}


class BackendUnavailableError(ImportError, ValueError):
    """An explicitly requested backend lacks a dependency; the message says how to install it.

    An ``ImportError`` for what it is, and a ``ValueError`` because it is a configuration this
    machine cannot serve: callers that report bad configuration in one line (the CLI, the node)
    report this one the same way.
    """


def _try_import(name: str) -> tuple[ModuleType | None, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # broken native libraries raise OSError etc., not only ImportError
        return None, f"{type(exc).__name__}: {exc}"


def import_onnxruntime() -> ModuleType:
    """``onnxruntime``, or a one-sentence :class:`BackendUnavailableError`."""
    module, why = _try_import("onnxruntime")
    if module is None:
        raise BackendUnavailableError(
            f"backend onnxruntime needs the onnxruntime package, which cannot be imported "
            f"({why}); "
            f"on a Jetson install NVIDIA's GPU build with `pip install onnxruntime-gpu "
            f"--index-url {JETSON_WHEEL_INDEX}`, elsewhere `pip install onnxruntime`"
        )
    return module


def import_onnx_exporter() -> None:
    """Check that ``torch.onnx.export(..., dynamo=True)`` can run (it needs onnx + onnxscript)."""
    missing = [name for name in ("onnx", "onnxscript") if _try_import(name)[0] is None]
    if missing:
        raise BackendUnavailableError(
            f"exporting ONNX needs {' and '.join(missing)}, which cannot be imported; install "
            f"{'them' if len(missing) > 1 else 'it'} with `pip install onnx onnxscript` "
            "(pure Python or aarch64 wheels, also on a Jetson)"
        )


def import_torch_tensorrt() -> ModuleType:
    """``torch_tensorrt``, or a one-sentence :class:`BackendUnavailableError`."""
    module, why = _try_import("torch_tensorrt")
    if module is None:
        raise BackendUnavailableError(
            f"backend tensorrt needs torch_tensorrt, which cannot be imported ({why}); on a "
            "Jetson with JetPack 6.2 install NVIDIA's matching wheels with `pip install "
            f"torch==2.8.0 torch_tensorrt==2.8.0 --index-url {JETSON_WHEEL_INDEX}` "
            "(see docs/jetson.md)"
        )
    return module


def module_version(name: str) -> str:
    """Version of an import name without importing it (``"none"`` when not installed)."""
    loaded = sys.modules.get(name)
    version = getattr(loaded, "__version__", None) if loaded is not None else None
    if version:
        return str(version)
    for dist in _DISTRIBUTIONS.get(name, (name,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "none"


def onnxruntime_providers() -> list[str]:
    """Execution providers this ONNX Runtime build offers (empty when it is not installed)."""
    module, _ = _try_import("onnxruntime")
    return list(module.get_available_providers()) if module is not None else []


def cuda_device_name(index: int = 0) -> str:
    """``"<name> sm_<major><minor>"`` of a CUDA device, or ``"none"`` without CUDA."""
    if not torch.cuda.is_available():
        return "none"
    major, minor = torch.cuda.get_device_capability(index)
    return f"{torch.cuda.get_device_name(index)} sm_{major}{minor}"


def jetson_release(path: str = "/etc/nv_tegra_release") -> str:
    """The L4T release of a Jetson (``"R36.4.3"``), ``"none"`` elsewhere.

    TensorRT engines are only valid on the L4T/JetPack they were built on, so it is part of
    their cache key.
    """
    try:
        first = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return "none"
    # "# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, EABI: aarch64, DATE: ..."
    fields = {}
    for part in first.lstrip("# ").split(","):
        key, _, value = part.strip().partition(" ")
        fields[key.rstrip(":")] = value.strip()
    major = first.lstrip("# ").split(" ")[0]
    revision = fields.get("REVISION", "")
    return f"{major}.{revision}" if revision else major or "none"
