"""Class specifications: names, palette, ignore index and the raw-label mapping of a dataset.

The canonical YAML files live in ``slimseg_ros/data/classes/`` so they ship as package data and
are found the same way in a source checkout and after ``pip``/``colcon`` install.
``config/classes/`` holds identical copies for the ROS share directory (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

CLASSES_DIR = Path(__file__).resolve().parent / "classes"


def builtin_class_specs() -> list[str]:
    """Return the names of the class specs shipped with the package (e.g. ``camvid``)."""
    return sorted(p.stem for p in CLASSES_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class ClassSpec:
    """What the label values of a dataset mean.

    Attributes:
        names: Class names, index = train id.
        palette: One RGB triple (0..255) per class.
        ignore_index: Label value that marks pixels excluded from losses and metrics.
        raw_label_map: Raw label value -> train id, for label files that do not store train ids
            directly (Cityscapes labelIds). Empty means raw values already are train ids.
        name: Short name of the spec (``camvid``) or the file stem it came from.
    """

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    raw_label_map: dict[int, int] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a class spec needs at least one class name")
        if len(self.palette) != len(self.names):
            raise ValueError(
                f"class spec has {len(self.names)} names but {len(self.palette)} palette colours"
            )
        for color in self.palette:
            if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
                raise ValueError(f"palette colour {color!r} is not an RGB triple in 0..255")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < len(self.names):
            raise ValueError(
                f"ignore_index {self.ignore_index} must be in {len(self.names)}..255 "
                f"(not a class id, and storable in a uint8 label map)"
            )
        for raw, train_id in self.raw_label_map.items():
            if not 0 <= raw <= 255:
                raise ValueError(f"raw label {raw} in raw_label_map is outside 0..255")
            if not (0 <= train_id < len(self.names) or train_id == self.ignore_index):
                raise ValueError(
                    f"raw_label_map maps {raw} to {train_id}, which is neither a class id "
                    f"(0..{len(self.names) - 1}) nor ignore_index {self.ignore_index}"
                )

    @property
    def num_classes(self) -> int:
        """Number of classes (train ids ``0..num_classes-1``)."""
        return len(self.names)

    def label_lut(self) -> np.ndarray:
        """Return a 256-entry uint8 lookup table raw label value -> train id.

        Without ``raw_label_map`` the class ids map to themselves; every other value (e.g. the
        CamVid void label 11) maps to ``ignore_index``.
        """
        lut = np.full(256, self.ignore_index, dtype=np.uint8)
        if self.raw_label_map:
            for raw, train_id in self.raw_label_map.items():
                lut[raw] = train_id
        else:
            lut[: self.num_classes] = np.arange(self.num_classes, dtype=np.uint8)
        return lut

    def palette_array(self) -> np.ndarray:
        """Return the palette as a ``(num_classes, 3)`` uint8 array."""
        return np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)

    def colorize(self, label: np.ndarray, ignore_color: tuple[int, int, int] = (0, 0, 0)
                 ) -> np.ndarray:
        """Render an HxW label map as an HxWx3 uint8 RGB image (ignore/unknown -> ignore_color)."""
        lut = np.empty((256, 3), dtype=np.uint8)
        lut[:] = ignore_color
        lut[: self.num_classes] = self.palette_array()
        return lut[np.asarray(label, dtype=np.uint8)]


def _parse_spec(data: object, source: str) -> ClassSpec:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ValueError(f"{source}: expected a mapping with a 'classes' list")
    names: list[str] = []
    palette: list[tuple[int, int, int]] = []
    for i, entry in enumerate(data["classes"]):
        if not isinstance(entry, dict) or "name" not in entry or "color" not in entry:
            raise ValueError(f"{source}: classes[{i}] needs 'name' and 'color' ([R, G, B])")
        names.append(str(entry["name"]))
        color = entry["color"]
        if not isinstance(color, (list, tuple)) or len(color) != 3:
            raise ValueError(f"{source}: classes[{i}].color must be [R, G, B], got {color!r}")
        palette.append(tuple(int(c) for c in color))  # type: ignore[arg-type]
    raw_map = data.get("raw_label_map") or {}
    if not isinstance(raw_map, dict):
        raise ValueError(f"{source}: raw_label_map must be a mapping raw value -> train id")
    try:
        return ClassSpec(
            names=tuple(names),
            palette=tuple(palette),
            ignore_index=int(data.get("ignore_index", 255)),
            raw_label_map={int(k): int(v) for k, v in raw_map.items()},
            name=str(data.get("name", Path(source).stem)),
        )
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None


def load_class_spec(name_or_path: str | Path) -> ClassSpec:
    """Load a class spec by built-in name (``camvid``, ``cityscapes``) or from a YAML file.

    Args:
        name_or_path: A built-in spec name or the path of a YAML file with ``classes`` (list of
            ``{name, color}``), optional ``ignore_index`` (default 255) and ``raw_label_map``.

    Returns:
        The parsed, validated :class:`ClassSpec`.

    Raises:
        ValueError: Unknown name, missing file or malformed content.
    """
    text = str(name_or_path)
    builtin = CLASSES_DIR / f"{text}.yaml"
    if "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml")):
        if not builtin.is_file():
            raise ValueError(
                f"unknown class spec {text!r}; built-in: {', '.join(builtin_class_specs())} "
                f"(or pass the path of a YAML file)"
            )
        path = builtin
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"class spec file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        try:
            data = yaml.safe_load(fh)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err.__class__.__name__})") from None
    return _parse_spec(data, str(path))
