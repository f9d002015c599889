"""DESIGN.md section 3 holds: every layer imports only the layers below it, only ``ros/`` imports
rclpy or ROS messages, and the package has no import cycles.

Read from the source (every import, also those inside functions), so a deferred import cannot
hide a wrong direction or a cycle; plus one run that imports every module below ``ros/`` and
finds no rclpy loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "slimseg_ros"
# DESIGN.md section 3: train uses eval and runtime for validation, data feeds runtime, ros sits
# on eval (replay), data (the image codec), runtime and control; cli uses every layer.
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "control": set(),
    "runtime": {"model"},
    "data": {"runtime", "model"},
    "eval": {"data", "runtime", "model"},
    "train": {"eval", "data", "runtime", "model"},
    "ros": {"eval", "data", "runtime", "model", "control"},
    "cli": {"ros", "train", "eval", "data", "runtime", "model", "control"},
}
SHARED = {"slimseg_ros", "slimseg_ros.progress", "slimseg_ros.sizes", "slimseg_ros.widths"}
"""Top-level modules every layer may use (version, progress bars, the size and width rules)."""
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "rosidl_runtime_py", "builtin_interfaces",
                "std_msgs", "sensor_msgs", "diagnostic_msgs", "lifecycle_msgs", "launch",
                "launch_ros", "rosgraph_msgs", "ament_index_python"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports (absolute names; a package's submodule when named)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in MODULES else target)
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else None


def test_every_module_belongs_to_a_layer_or_is_shared() -> None:
    assert {_layer(m) for m in MODULES} - {None} == set(ALLOWED)
    assert {m for m in MODULES if _layer(m) is None} == SHARED


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for module in (m for m in MODULES if _layer(m) == layer):
        for target in _imports(module):
            if not target.startswith("slimseg_ros") or target in SHARED:
                continue
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} imports {target}")
    assert wrong == [], f"{layer}/ may import only {sorted(ALLOWED[layer])}"


@pytest.mark.parametrize("layer", sorted(set(ALLOWED) - {"ros"}))
def test_only_ros_imports_rclpy_and_ros_messages(layer: str) -> None:
    wrong = [f"{module} imports {target}" for module in MODULES if _layer(module) == layer
             for target in _imports(module) if target.split(".")[0] in ROS_PACKAGES]
    assert wrong == []


def test_every_import_of_the_package_names_one_of_its_modules() -> None:
    """A relative import one dot short (deferred inside a function, so nothing fails at import
    time) names a module that does not exist."""
    wrong = [f"{module} imports {target}" for module in MODULES for target in _imports(module)
             if target.split(".")[0] == "slimseg_ros" and target not in MODULES]
    assert wrong == []


def test_the_node_does_not_import_its_clients() -> None:
    """``ros/client/`` drives the node from outside (a process, a probe, replay): the node's own
    modules never depend on it, so it can change without touching what runs on a robot."""
    client = "slimseg_ros.ros.client"
    node = [m for m in MODULES if _layer(m) == "ros" and not m.startswith(client)]
    assert node and any(m.startswith(client + ".") for m in MODULES)
    wrong = [f"{module} imports {target}" for module in node for target in _imports(module)
             if target == client or target.startswith(client + ".")]
    assert wrong == []


def test_no_import_cycles_in_the_package() -> None:
    graph = {m: {t for t in _imports(m) if t in MODULES} for m in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_nothing_below_ros_loads_rclpy() -> None:
    below = sorted(m for m in MODULES if _layer(m) not in ("ros", "cli"))
    code = ("import importlib, sys\n"
            f"for name in {below!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(ROS_PACKAGES)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
