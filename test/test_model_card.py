"""docs/model.md is generated from eval JSONs of the shipped model, and says so by its hash."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slimseg_ros.eval.model_card import card_sha256, main, model_card
from slimseg_ros.runtime.cache import file_sha256

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "models/slimseg_camvid.safetensors"
CARD = ROOT / "docs" / "model.md"


def _card_jsons() -> list[tuple[str, dict]]:
    text = CARD.read_text()
    names = re.search(r"--out docs/model.md ([^`]+)`", text).group(1).split()
    return [(n, json.loads((ROOT / n).read_text())) for n in names]


def test_the_card_measured_the_shipped_model() -> None:
    """Fails when a new model ships without evaluating it again (docs/model.md, how)."""
    docs = _card_jsons()
    assert card_sha256([d for _, d in docs]) == file_sha256(ROOT / SHIPPED)
    assert f"SHA-256 `{file_sha256(ROOT / SHIPPED)}`" in CARD.read_text()


def test_the_card_is_what_its_jsons_generate() -> None:
    assert CARD.read_text() == model_card(_card_jsons(), SHIPPED), (
        "docs/model.md was edited by hand or its JSONs changed: run the command at its top")


def test_readme_quotes_the_cards_val_numbers() -> None:
    val = next(d for _, d in _card_jsons() if d["split"] == "val" and not d.get("sequences"))
    readme = (ROOT / "README.md").read_text()
    for width, result in val["widths"].items():
        row = re.search(rf"^\| {re.escape(width)} \| [^|]+ \| ([0-9.]+) \| ([0-9.]+) \|",
                        readme, re.M)
        assert row, f"README's results table has no row for width {width}"
        assert row.groups() == (f"{result['miou']:.3f}", f"{result['boundary_f1']:.3f}")


def _doc(sha: str | None) -> dict:
    r = {"miou": 0.5, "pixel_acc": 0.9, "boundary_f1": 0.4, "interior_miou": 0.6,
         "per_class_iou": {"Sky": 0.9, "Road": 0.1}}
    return {"widths": {"0.5": r, "1.0": r}, "dataset": "camvid", "split": "val", "images": 3,
            "checkpoint": "m.safetensors", "model_sha256": sha, "backend": "torch",
            "device": "cpu", "precision": "fp32", "input_size": [360, 480]}


def test_jsons_of_two_models_or_without_a_hash_make_no_card() -> None:
    with pytest.raises(ValueError, match="2 different models"):
        model_card([("a.json", _doc("a" * 64)), ("b.json", _doc("b" * 64))], "m.safetensors")
    with pytest.raises(ValueError, match="must carry model_sha256"):
        model_card([("a.json", _doc(None))], "m.safetensors")


def test_the_command_refuses_jsons_of_another_file(tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    good, stale = tmp_path / "good.json", tmp_path / "stale.json"
    good.write_text(json.dumps(_doc(file_sha256(model))))
    stale.write_text(json.dumps(_doc("0" * 64)))
    out = tmp_path / "card.md"
    assert main([str(good), "--checkpoint", str(model), "--out", str(out)]) == 0
    assert "| 1.0 | 0.500 | 0.900 | 0.400 | 0.600 |" in out.read_text()
    with pytest.raises(SystemExit, match="measured another model"):
        main([str(stale), "--checkpoint", str(model), "--out", str(out)])
