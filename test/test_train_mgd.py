"""Unlabelled frames, Multi-Granularity Distillation and ``slimseg adapt``."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slimseg_ros.cli.main import build_parser, main
from slimseg_ros.data import build_dataset
from slimseg_ros.data.unlabeled import SubsetFrames, labeled_partition, open_unlabeled
from slimseg_ros.eval import bagio
from slimseg_ros.model import ModelConfig, SlimSegNet, load_checkpoint
from slimseg_ros.train.adapt import AdaptSettings, adapt_model
from slimseg_ros.train.config import MGDConfig, load_train_config
from slimseg_ros.train.ema import WeightAverage
from slimseg_ros.train.losses import image_kd_loss, region_similarity_loss
from slimseg_ros.train.loop import train
from slimseg_ros.train.mgd import MGD, MeanTeacher, cutmix_masks
from slimseg_ros.train.recalibrate import recalibrate_model
from slimseg_ros.train.teacher import Teacher

SMALL = ModelConfig(num_classes=4, head_channels=32)


def test_cutmix_masks_are_binary_boxes_of_the_asked_area_and_reproducible() -> None:
    g = torch.Generator().manual_seed(0)
    m = cutmix_masks(6, 40, 60, boxes=1, area=(0.25, 0.5), generator=g)
    assert m.shape == (6, 1, 40, 60) and set(m.unique().tolist()) <= {0.0, 1.0}
    cover = m.mean((1, 2, 3))
    assert bool(((cover > 0.15) & (cover < 0.6)).all())  # one box: its area, up to rounding
    again = cutmix_masks(6, 40, 60, boxes=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)
    three = cutmix_masks(6, 40, 60, boxes=3, generator=torch.Generator().manual_seed(0))
    assert bool((three.mean((1, 2, 3)) >= cover - 1e-6).all())  # a union only grows


def test_region_and_image_terms_are_zero_for_identical_inputs_and_train_the_student_only() -> None:
    x = torch.randn(2, 16, 14, 14)
    assert region_similarity_loss(x, x * 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert image_kd_loss(x, x.clone()).item() == 0.0
    student = torch.randn(2, 24, 14, 14, requires_grad=True)  # another width's channel count
    teacher = torch.randn(2, 16, 14, 14, requires_grad=True)
    region = region_similarity_loss(student, teacher)
    assert region.item() > 1e-4
    region.backward()
    assert student.grad is not None and teacher.grad is None
    logits_s = torch.randn(2, 4, 8, 8, requires_grad=True)
    logits_t = torch.randn(2, 4, 8, 8, requires_grad=True)
    image = image_kd_loss(logits_s, logits_t)
    assert image.item() > 0
    image.backward()
    assert logits_s.grad is not None and logits_t.grad is None


def _teacher(seed: int) -> Teacher:
    torch.manual_seed(seed)
    return Teacher(SlimSegNet(SMALL))


def test_pseudo_labels_mix_the_teachers_predictions_with_the_boxes() -> None:
    external, student = _teacher(0), SlimSegNet(SMALL)
    mean = MeanTeacher(student, 0.99)
    mgd = MGD(MGDConfig(), external, mean)
    u0, u1 = torch.randn(2, 3, 32, 48), torch.randn(2, 3, 32, 48)
    batch = mgd.mixed_batch(u0, u1, torch.Generator().manual_seed(1))
    m = cutmix_masks(2, 32, 48, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(batch.images, u0 * (1 - m) + u1 * m)
    probs = mgd._probs(u0) * (1 - m) + mgd._probs(u1) * m
    assert torch.equal(batch.labels, probs.argmax(1))  # confidence 0: every pixel labelled
    assert batch.confident == 1.0
    assert batch.region_target.shape[1] == 32  # the mean teacher's decoder (head_channels)
    assert batch.image_target.shape[:2] == (2, 4)
    # the external teacher's outputs on the mixed images come along for its KD to reuse
    assert torch.allclose(batch.external_outputs.logits, external(batch.images).logits)
    assert MGD(MGDConfig(), None, mean).mixed_batch(u0, u1).external_outputs is None
    strict = MGD(replace(MGDConfig(), confidence=0.999), external, None)
    sure = strict.mixed_batch(u0, u1, torch.Generator().manual_seed(1))
    assert sure.confident < 0.5 and bool((sure.labels[sure.labels != 255] < 4).all())
    assert int((sure.labels == 255).sum()) == round((1 - sure.confident) * sure.labels.numel())
    with pytest.raises(ValueError, match="needs a teacher"):
        MGD(MGDConfig(), None, None)


def test_flipped_teachers_average_each_frame_and_its_mirror_image() -> None:
    external, student = _teacher(0), SlimSegNet(SMALL)
    with torch.no_grad():  # confident, input-dependent predictions (a fresh head is ~uniform)
        for p in external.model.parameters():
            p.mul_(8.0)
    mean = MeanTeacher(student, 0.99)
    u = torch.randn(2, 3, 32, 48)
    plain = MGD(MGDConfig(), external, mean)
    flipped = MGD(replace(MGDConfig(), teacher_flip=True), external, mean)
    # the mirror image's prediction, mirrored back, is the second view
    expected = (plain._probs(u) + plain._probs(u.flip(-1)).flip(-1)) / 2
    assert torch.allclose(flipped._probs(u), expected, atol=1e-6)
    assert not torch.allclose(flipped._probs(u), plain._probs(u), atol=1e-3)
    # the ensemble, unlike one strided network, predicts a mirrored frame as the mirror image
    assert torch.allclose(flipped._probs(u.flip(-1)), flipped._probs(u).flip(-1), atol=1e-6)
    assert not torch.allclose(plain._probs(u.flip(-1)), plain._probs(u).flip(-1), atol=1e-3)


def test_class_balanced_pseudo_labels_keep_each_classs_most_confident_pixels() -> None:
    # 1 x 3 classes x 2 x 4 pixels: class 0 sure everywhere it wins, class 2 never above 0.6
    probs = torch.zeros(1, 3, 2, 4)
    probs[0, 0, 0] = 0.9
    probs[0, 2, 1] = torch.tensor([0.40, 0.45, 0.55, 0.60])
    probs[0, 1, 0] = 0.1
    probs[0, :2, 1] = (1 - probs[0, 2, 1]) / 2  # class 2 still wins its row
    global_only = MGD(replace(MGDConfig(), confidence=0.7), _teacher(0), None)
    labels, kept = global_only._pseudo(probs.clone())
    assert bool((labels[0, 1] == 255).all()) and kept == 0.5  # class 2 trained away
    balanced = MGD(replace(MGDConfig(), confidence=0.7, class_fraction=0.5), _teacher(0), None)
    labels, kept = balanced._pseudo(probs.clone())
    assert labels[0, 0].tolist() == [0, 0, 0, 0]  # above 0.7: all kept, as before
    assert labels[0, 1].tolist() == [255, 255, 2, 2] and kept == 0.75  # class 2's top half
    with pytest.raises(ValueError, match="class_fraction"):
        load_train_config(None, ["mgd.class_fraction=1.5"])


def _unsure_class(n: int = 10) -> torch.Tensor:
    """1 x 3 classes x 1 x n probabilities: class 2 wins every pixel, never at 0.5 or more."""
    probs = torch.zeros(1, 3, 1, n)
    probs[0, 2, 0] = torch.linspace(0.40, 0.49, n)
    probs[0, :2, 0] = (1 - probs[0, 2, 0]) / 2
    return probs


@pytest.mark.parametrize("fraction, kept", [(0.0, 0), (0.5, 5), (0.8, 8), (1.0, 10)])
def test_class_fraction_is_the_share_of_a_classs_pixels_kept_below_the_confidence(
        fraction: float, kept: int) -> None:
    mgd = MGD(replace(MGDConfig(), confidence=0.7, class_fraction=fraction), _teacher(0), None)
    labels, share = mgd._pseudo(_unsure_class())
    assert int((labels == 2).sum()) == kept and share == pytest.approx(kept / 10)
    assert bool((labels[0, 0, 10 - kept:] == 2).all())  # its most confident pixels


def test_the_adapt_recipe_keeps_pseudo_labels_of_classes_the_threshold_alone_drops() -> None:
    # thin classes (signs, poles) are rarely confident; the recipe must not train them away
    recipe = AdaptSettings()
    unsure = _unsure_class()
    assert float(unsure.max(1).values.max()) < recipe.confidence
    cfg = replace(MGDConfig(), confidence=recipe.confidence, class_fraction=recipe.class_fraction)
    labels, _ = MGD(cfg, _teacher(0), None)._pseudo(unsure)
    assert int((labels == 2).sum()) > 0


def test_labelled_pixel_term_pulls_towards_the_teachers_argmax() -> None:
    external = _teacher(0)
    mgd = MGD(MGDConfig(), external, None)
    images = torch.randn(2, 3, 32, 32)
    targets = mgd.labeled_targets(images)
    terms = mgd.labeled_terms(targets)
    agree = torch.nn.functional.one_hot(targets, 4).permute(0, 3, 1, 2).float() * 20
    loss_agree = terms(1.0, agree, torch.zeros(1))["mgd_pixel_labeled"]
    loss_other = terms(1.0, -agree, torch.zeros(1))["mgd_pixel_labeled"]
    assert loss_agree.item() < 1e-6 < loss_other.item()


def test_partition_is_fixed_by_its_file_and_checked(tmp_path: Path) -> None:
    ds = build_dataset("synthetic", None, "train", n=20, size=16)
    part = tmp_path / "partition.json"
    labeled, unlabeled = labeled_partition(ds, 0.25, 0, part)
    assert len(labeled) == 5 and len(unlabeled) == 15 and not set(labeled) & set(unlabeled)
    doc = json.loads(part.read_text())
    assert doc["fraction"] == 0.25 and len(doc["labeled"]) == 5
    # another seed with the file present: the file wins (every run of a comparison alike)
    assert labeled_partition(ds, 0.25, 7, part) == (labeled, unlabeled)
    other = build_dataset("synthetic", None, "train", n=21, size=16)
    with pytest.raises(ValueError, match="lists other frames"):
        labeled_partition(other, 0.25, 0, part)
    with pytest.raises(ValueError, match="labeled_fraction must be in"):
        labeled_partition(ds, 1.0, 0, tmp_path / "p2.json")
    unl = SubsetFrames(ds, unlabeled, unlabeled=True)
    image, label = unl.load(0)
    assert np.array_equal(image, ds.load(unlabeled[0])[0]) and bool((label == 255).all())


def _image_folder(root: Path, n: int = 8) -> Path:
    ds = build_dataset("synthetic", None, "val", n=n, size=48, num_classes=11)
    root.mkdir(parents=True)
    for i in range(n):
        rgb, _ = ds.load(i)
        cv2.imwrite(str(root / f"frame_{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def test_unlabelled_sources_fail_in_one_line_when_nothing_is_readable(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "frames", n=3)
    frames = open_unlabeled(folder)
    assert len(frames) == 3 and bool((frames.load(0)[1] == 255).all())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        open_unlabeled(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        open_unlabeled(tmp_path / "junk")
    with pytest.raises(ValueError, match="no such bag or image folder"):
        open_unlabeled(tmp_path / "missing")
    with pytest.raises(ValueError, match="applies to bags only"):
        open_unlabeled(folder, image_topic="/camera/image_raw")


def test_a_bag_without_labels_is_an_unlabelled_source(tmp_path: Path) -> None:
    ds = build_dataset("synthetic", None, "val", n=4, size=48, num_classes=11)
    bagio.write_frames_bag(tmp_path / "bag", ((ds.load(i)[0], None) for i in range(4)),
                           compressed="png")
    frames = open_unlabeled(tmp_path / "bag")
    rgb, label = frames.load(2)
    assert len(frames) == 4 and np.array_equal(rgb, ds.load(2)[0])
    assert bool((label == 255).all())


def _synthetic(tmp_path: Path, *extra: str):
    return load_train_config(None, [
        "model.num_classes=4", "model.head_channels=32", "data.dataset=synthetic",
        "data.crop_size=[48,48]", "data.batch_size=2", "data.workers=0", "data.val_size=[48,48]",
        "data.options={n: 16, size: 48}", "val_every=0", "val_images=2", "threads=1",
        "optim.warmup_steps=1", "checkpoint_every=2", f"out={tmp_path / 'run'}", *extra])


@pytest.mark.slow
def test_training_on_a_labelled_quarter_with_the_rest_unlabelled(tmp_path: Path) -> None:
    extra = ("data.labeled_fraction=0.25", "data.unlabeled=partition")
    result = train(_synthetic(tmp_path, "steps=2", *extra), progress=False)
    part = json.loads((tmp_path / "run" / "partition.json").read_text())
    assert len(part["labeled"]) == 4 and len(part["unlabeled"]) == 12
    terms = result.history[-1]["train_loss"]
    assert {"u_ce", "u_mgd_region", "u_mgd_image", "mgd_pixel_labeled"} <= set(terms["1.0"])
    assert "u_kd" in terms["0.5"]  # stepwise KD runs on the mixed frames too
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert "mgd_mean_teacher" in state
    again = train(_synthetic(tmp_path, "steps=3", *extra), progress=False)
    assert again.steps == 3 and len(again.losses) == 1
    # the labelled-only arm of the protocol: same partition, no unlabelled frames
    alone = train(_synthetic(tmp_path, "steps=1", "data.labeled_fraction=0.25",
                             f"data.partition={tmp_path / 'run' / 'partition.json'}",
                             f"out={tmp_path / 'alone'}"), progress=False)
    assert not any(k.startswith("u_") for k in alone.history[-1]["train_loss"]["1.0"])


def test_mgd_start_step_trains_on_labels_alone_first(tmp_path: Path) -> None:
    extra = ("data.labeled_fraction=0.25", "data.unlabeled=partition", "val_every=1")
    history = train(_synthetic(tmp_path, "steps=2", "mgd.start_step=1", *extra),
                    progress=False).history
    first, second = (entry["train_loss"]["1.0"] for entry in history)
    assert not any(k.startswith("u_") or k.startswith("mgd_") for k in first)
    assert {"u_ce", "u_mgd_region", "mgd_pixel_labeled"} <= set(second)
    with pytest.raises(ValueError, match="mgd.start_step must be in"):
        _synthetic(tmp_path, "steps=2", "mgd.start_step=2", *extra)


def test_unlabelled_set_smaller_than_two_batches_is_refused(tmp_path: Path) -> None:
    cfg = _synthetic(tmp_path, "steps=1", "data.labeled_fraction=0.9",
                     "data.unlabeled=partition", "data.unlabeled_batch_size=4")
    with pytest.raises(ValueError, match="fewer than two batches"):
        train(cfg, progress=False)


@pytest.mark.slow
def test_slimseg_adapt_writes_a_new_checkpoint_and_scores_it(tmp_path: Path, make_checkpoint,
                                                             capsys) -> None:
    folder = _image_folder(tmp_path / "frames", n=40)
    ds = build_dataset("synthetic", None, "val", n=4, size=48, num_classes=11)
    bagio.write_dataset_bag(ds, tmp_path / "labelled")
    checkpoint = make_checkpoint(input_size=(48, 48))
    out = tmp_path / "adapted.safetensors"
    teacher = make_checkpoint(input_size=(48, 48), seed=1)
    assert main(["adapt", "--images", str(folder), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--steps", "2", "--batch-size", "2", "--confidence", "0.5",
                 "--class-fraction", "0.5", "--teacher", str(teacher), "--distill",
                 "--teacher-flip", "--runs", "2", "--check-fraction", "0.25",
                 "--eval-bag", str(tmp_path / "labelled")]) == 0
    printed = capsys.readouterr().out
    assert ("| width | before | recalibrated only | adapted (every width) | kept | kept, as "
            "checked |") in printed
    model, meta = load_checkpoint(out)
    adapted = meta.training["adapted"]  # the check's choice made again from all 40 frames
    assert adapted["steps"] == 2 and adapted["frames"] == 40 and "images" in adapted["source"]
    assert adapted["refit"] is True and "adapted on 40 frames" in printed
    check = adapted["check"]  # the teacher is the reference: 10 of the 40 frames held back
    assert check["frames"] == 10 and check["reference"] == str(teacher)
    assert set(check["choice"]) == {str(w) for w in model.widths}
    assert set(check["agreement"]) == {"input", "recalibrated", "adapted"}
    assert sum(f"width {w:g}: agreement" in printed for w in model.widths) == len(model.widths)
    assert adapted["teacher"] == str(teacher) and adapted["class_fraction"] == 0.5
    assert adapted["distill"] is True and adapted["teacher_flip"] is True
    assert adapted["runs"] == 2 and adapted["seeds"] == [0, 1]
    assert adapted["kept"] == "student" and adapted["bn_statistics"] == "batch"
    assert adapted["params"] == "all" and adapted["optimizer"] == "sgd"
    assert main(["adapt", "--images", str(folder), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--steps", "1", "--distill"]) == 2  # nothing to distil
    other_classes = make_checkpoint(SMALL, input_size=(48, 48))
    assert main(["adapt", "--images", str(folder), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--steps", "1", "--teacher", str(other_classes)]) == 2
    assert meta.training["bn_recalibrated"]["frames"] == 40
    assert main(["adapt", "--images", str(folder), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--steps", "1", "--runs", "1", "--check-reference", str(teacher),
                 "--check-fraction", "0.25", "--no-refit"]) == 0
    _, meta = load_checkpoint(out)  # as checked: the held-back frames are never used
    assert meta.training["bn_recalibrated"]["frames"] == 30
    assert meta.training["adapted"]["frames"] == 30 and not meta.training["adapted"]["refit"]
    assert main(["adapt", "--images", str(folder), "--checkpoint", str(checkpoint), "--out",
                 str(checkpoint), "--steps", "1", "--check-fraction", "0"]) == 2  # never the input
    assert main(["adapt", "--images", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


def test_adapt_keeps_an_average_that_starts_at_the_recalibrated_model(tmp_path: Path,
                                                                      make_checkpoint) -> None:
    frames = open_unlabeled(_image_folder(tmp_path / "frames"))
    checkpoint = make_checkpoint(SMALL, input_size=(48, 48))
    common = dict(runs=1, steps=1, batch_size=2, confidence=0.0, lr=1e-2, recalibrate_frames=8,
                  threads=1, check_fraction=0.0)  # 8 frames: too few to hold any back

    def adapted(**kw: object) -> dict[str, torch.Tensor]:
        model, meta = load_checkpoint(checkpoint)
        adapt_model(model, meta, frames, AdaptSettings(**common, **kw), "test", log=lambda m: None)
        return model.state_dict()

    start, meta = load_checkpoint(checkpoint)
    recalibrate_model(start, meta, frames, frames=8)
    start = start.state_dict()
    student = adapted(keep="student", freeze_bn_statistics=True)
    average = adapted(keep="average", average_decay=0.5, freeze_bn_statistics=True)
    key = "net.stem.weight"
    assert not torch.allclose(student[key], start[key])
    # one step with decay 0.5 and no ramp: halfway between the recalibrated and adapted weights
    assert torch.allclose(average[key], (start[key] + student[key]) / 2, atol=1e-6)
    stats = [k for k in start if k.endswith("running_mean")]
    assert stats and all(torch.equal(student[k], start[k]) for k in stats)  # frozen while adapting
    batch = adapted(keep="student")  # the default: each batch's statistics
    assert any(not torch.equal(batch[k], start[k]) for k in stats)
    norm_only = adapted(keep="student", params="norm", freeze_bn_statistics=True)
    assert torch.equal(norm_only[key], start[key])  # convolutions untouched
    affine = [k for k in start if k.endswith(".weight") and k.replace("weight", "running_mean")
              in start]
    assert affine and any(not torch.equal(norm_only[k], start[k]) for k in affine)
    # AdamW's first step moves every weight by about the same amount (its size is the learning
    # rate, whatever the gradient); SGD's in proportion to each weight's gradient
    moved = {name: (adapted(keep="student", freeze_bn_statistics=True, optimizer=name)[key]
                    - start[key]).abs().flatten() for name in ("adamw", "sgd")}
    for name, delta in moved.items():
        delta = delta[delta > 1e-9]
        moved[name] = float(delta.std() / delta.mean())
    assert moved["adamw"] < 0.1 < moved["sgd"]
    with pytest.raises(ValueError, match="optimizer must be"):
        AdaptSettings(optimizer="adam")
    with pytest.raises(ValueError, match="keep must be"):
        AdaptSettings(keep="best")
    with pytest.raises(ValueError, match="params must be"):
        AdaptSettings(params="head")


def test_adapt_stops_at_its_steps_or_its_minutes_whichever_comes_first(tmp_path: Path,
                                                                        make_checkpoint) -> None:
    frames = open_unlabeled(_image_folder(tmp_path / "frames"))
    checkpoint = make_checkpoint(SMALL, input_size=(48, 48))
    common = dict(batch_size=2, recalibrate_frames=8, threads=1, runs=1, check_fraction=0.0)
    for budget, expected in ((dict(steps=2), 2), (dict(steps=2, minutes=1e-9), 0)):
        model, meta = load_checkpoint(checkpoint)
        meta, result = adapt_model(model, meta, frames, AdaptSettings(**common, **budget),
                                   "test", log=lambda m: None)
        assert result.steps == expected == meta.training["adapted"]["steps"]
    for budget in (dict(steps=0, minutes=0.0), dict(steps=-1), dict(minutes=-1.0)):
        with pytest.raises(ValueError, match="positive number of steps or minutes"):
            AdaptSettings(**budget)


def test_slimseg_adapt_flags_default_to_the_measured_recipe() -> None:
    # the command line takes its defaults from AdaptSettings (torch-free, for --help); a flag
    # whose default drifted from it would run a recipe nobody measured
    args = build_parser().parse_args(["adapt", "--bag", "b", "--out", "o.safetensors"])
    recipe = AdaptSettings()
    for name in ("steps", "minutes", "batch_size", "lr", "confidence", "class_fraction",
                 "teacher", "distill", "teacher_flip", "seed", "threads", "keep", "optimizer",
                 "runs", "params", "check_fraction", "check_reference", "check_margin"):
        assert getattr(args, name) == getattr(recipe, name), name
    assert (args.bn_statistics == "frozen") == recipe.freeze_bn_statistics


def test_adapt_runs_average_independent_runs_and_re_estimate_bn(tmp_path: Path,
                                                                 make_checkpoint) -> None:
    frames = open_unlabeled(_image_folder(tmp_path / "frames"))
    checkpoint = make_checkpoint(SMALL, input_size=(48, 48))
    common = dict(batch_size=2, recalibrate_frames=8, threads=1, steps=2, keep="student",
                  check_fraction=0.0)

    def adapted(**kw: object) -> tuple[SlimSegNet, dict]:
        model, meta = load_checkpoint(checkpoint)
        meta, result = adapt_model(model, meta, frames, AdaptSettings(**common, **kw), "test",
                                   log=lambda m: None)
        assert result.runs == meta.training["adapted"]["runs"]
        return model, meta.training["adapted"]

    first, _ = adapted(seed=3, runs=1)
    second, _ = adapted(seed=4, runs=1)
    soup, record = adapted(seed=3, runs=2)
    assert record["runs"] == 2 and record["seeds"] == [3, 4] and record["steps"] == 2
    a, b, c = first.state_dict(), second.state_dict(), soup.state_dict()
    key = "net.stem.weight"
    assert not torch.allclose(a[key], b[key])  # the seeds' runs differ
    assert torch.allclose(c[key], (a[key] + b[key]) / 2, atol=1e-6)  # the soup is their mean
    # ... with its own BN statistics: those of the averaged weights, not the averaged ones
    _, meta = load_checkpoint(checkpoint)
    expected = copy.deepcopy(soup)
    expected.load_state_dict({k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k]
                              for k in a})
    recalibrate_model(expected, meta, frames, frames=8)
    stats = [k for k in c if k.endswith("running_var")]
    assert all(torch.allclose(c[k], expected.state_dict()[k], atol=1e-5) for k in stats)
    assert any(not torch.allclose(c[k], (a[k] + b[k]) / 2, atol=1e-4) for k in stats)
    with pytest.raises(ValueError, match="runs must be at least 1"):
        AdaptSettings(runs=0)


def test_weight_average_without_ramp_moves_by_its_decay_from_the_first_step() -> None:
    model = torch.nn.Linear(2, 2)
    ramped, plain = WeightAverage(model, 0.9), WeightAverage(model, 0.9, ramp=False)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ramped.update(model, step=0)
    plain.update(model, step=0)
    assert torch.allclose(plain.model.weight, before + 0.1)
    assert torch.allclose(ramped.model.weight, before + 0.9)  # ramp: decay 0.1 at step 0
