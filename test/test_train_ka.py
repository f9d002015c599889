"""The teacher architecture, external-teacher distillation and Knowledge Adaptation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slimseg_ros.model import ModelConfig, SlimSegNet, load_checkpoint
from slimseg_ros.model.checkpoint import random_meta, save_checkpoint
from slimseg_ros.train.config import LossConfig, load_train_config
from slimseg_ros.train.ka import (
    FeatureAutoencoder, KnowledgeAdaptation, load_autoencoder, save_autoencoder, train_autoencoder,
)
from slimseg_ros.train.ema import WeightAverage
from slimseg_ros.train.loop import train
from slimseg_ros.train.step import ExternalTeacher, slimseg_step
from slimseg_ros.train.teacher import load_teacher

TEACHER = ModelConfig(arch="resnet18_lraspp", widths=(1.0,), num_classes=4, head_channels=32)
STUDENT = ModelConfig(num_classes=4, head_channels=32)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _teacher_file(path: Path, config: ModelConfig = TEACHER, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, SlimSegNet(config), random_meta(config))


def _teacher(tmp_path: Path, seed: int = 0):
    path = _teacher_file(tmp_path / f"teacher{seed}.safetensors", seed=seed)
    return load_teacher(path, num_classes=4, mean=MEAN, std=STD)


@pytest.mark.parametrize("widths", [(1.0,), (0.5, 1.0)])
def test_resnet18_freezes_to_the_same_logits_and_exports(widths: tuple[float, ...]) -> None:
    config = ModelConfig(arch="resnet18_lraspp", widths=widths, num_classes=5, head_channels=32)
    model = SlimSegNet(config).eval()
    x = torch.randn(1, 3, 64, 96)
    for w in widths:
        frozen = model.freeze(w)
        with model.using_width(w), torch.no_grad():
            reference = model(x)
        assert reference.shape == (1, 5, 8, 12)
        assert (frozen(x) - reference).abs().max().item() < 1e-4
    torch.export.export(model.freeze(1.0), (x,))


def test_forward_features_gives_the_logits_and_the_1_16_encoder_output() -> None:
    model = SlimSegNet(STUDENT).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        logits, features = model.forward_features(x)
        assert torch.equal(logits, model(x))
    assert features.shape == (2, 320, 4, 6)


def test_fp16_checkpoints_are_half_the_size_and_load_as_fp32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SlimSegNet(TEACHER).eval()
    full = save_checkpoint(tmp_path / "fp32.safetensors", model, random_meta(TEACHER))
    half = save_checkpoint(tmp_path / "fp16.safetensors", model, random_meta(TEACHER),
                           dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() < 0.05 * model(x).abs().max().item()


def test_a_teacher_of_other_classes_or_normalisation_is_refused(tmp_path: Path) -> None:
    path = _teacher_file(tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match="predicts 4 classes, the student 11"):
        load_teacher(path, num_classes=11, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="normalises with mean"):
        load_teacher(path, num_classes=4, mean=(0.5, 0.5, 0.5), std=STD)


def test_the_teacher_is_frozen_in_eval_mode_and_gives_1_16_features(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path)
    teacher.model.train()  # even if someone flips it, a call runs in eval mode without grads
    out = teacher(torch.randn(2, 3, 64, 96))
    assert not teacher.model.training and not out.logits.requires_grad
    assert out.features.shape == (2, teacher.feature_channels, 4, 6)
    assert out.logits_at((64, 96)).shape == (2, 4, 64, 96)


@pytest.mark.slow
def test_autoencoder_stage_lowers_reconstruction_and_is_tied_to_its_teacher(
        tmp_path: Path) -> None:
    teacher = _teacher(tmp_path)
    torch.manual_seed(0)
    images = torch.randn(4, 3, 64, 64)
    ae, summary = train_autoencoder(teacher, iter([images] * 40), latent=32, steps=40, lr=0.05,
                                    log=lambda _: None)
    assert summary["final_loss"] < 0.5 * summary["first_loss"]
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    path = save_autoencoder(tmp_path / "ae.safetensors", ae, teacher, summary)
    again = load_autoencoder(path, teacher)
    feats = teacher(images).features
    assert torch.equal(again.encode(feats), ae.encode(feats))
    with pytest.raises(ValueError, match="another teacher"):
        load_autoencoder(path, _teacher(tmp_path, seed=1))
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a Knowledge Adaptation autoencoder"):
        load_autoencoder(tmp_path / "junk.safetensors", teacher)


@pytest.mark.parametrize("target, expected", [
    ("widest", {1.0}), ("all", {0.25, 0.5, 0.75, 1.0}), ("adjacent", {0.25, 0.5, 0.75, 1.0})])
def test_ka_terms_appear_at_the_widths_of_the_target_and_train_only_the_student(
        tmp_path: Path, target: str, expected: set[float]) -> None:
    teacher = _teacher(tmp_path)
    torch.manual_seed(0)
    student = SlimSegNet(STUDENT).train()
    ka = KnowledgeAdaptation(FeatureAutoencoder(teacher.feature_channels, 32), student, target)
    cfg = LossConfig(kd="stepwise", boundary_weight=0.0)
    report = slimseg_step(student, torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64)),
                          student.widths, cfg, external=ExternalTeacher(teacher, ka))
    assert {w for w, parts in report.items() if "ka_adapt" in parts} == expected
    assert all(report[w]["ka_affinity"] >= 0.0 for w in expected)
    assert "kd" in report[1.0]  # the external teacher teaches the widest width
    assert all(p.grad is None for p in teacher.model.parameters())
    assert all(p.grad is None for p in ka.autoencoder.parameters())
    assert all(p.grad is not None for p in ka.feature_adapters.parameters())
    assert student.net.stem.weight.grad is not None


def test_without_ka_the_teacher_only_adds_logit_kd_at_the_widest_width(tmp_path: Path) -> None:
    teacher = _teacher(tmp_path)
    student = SlimSegNet(STUDENT).train()
    report = slimseg_step(student, torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32)),
                          student.widths, LossConfig(kd="none", boundary_weight=0.0),
                          external=ExternalTeacher(teacher))
    assert "kd" in report[1.0] and "kd" not in report[0.5]
    assert not any("ka_adapt" in parts for parts in report.values())


def test_kd_teacher_distils_every_width_from_the_external_teacher(tmp_path: Path) -> None:
    from slimseg_ros.train.losses import kd_loss

    teacher = _teacher(tmp_path)
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    torch.manual_seed(0)
    student = SlimSegNet(STUDENT).train()
    report = slimseg_step(student, images, labels, student.widths,
                          LossConfig(kd="teacher", boundary_weight=0.0),
                          external=ExternalTeacher(teacher))
    target = teacher(images).logits_at(labels.shape[-2:])
    for w in student.widths:
        with student.using_width(w), torch.no_grad():
            logits = torch.nn.functional.interpolate(student(images), size=labels.shape[-2:],
                                                     mode="bilinear", align_corners=False)
        # in train mode BN uses the batch's statistics: the same batch gives the same logits
        assert report[w]["kd"] == pytest.approx(float(kd_loss(logits, target)), rel=1e-3)


def test_kd_teacher_without_an_external_teacher_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="loss.kd=teacher needs an external teacher"):
        load_train_config(None, ["loss.kd=teacher"])


def test_precomputed_teacher_outputs_are_used_instead_of_running_the_teacher_again(
        tmp_path: Path) -> None:
    teacher = _teacher(tmp_path)
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    cfg = LossConfig(kd="stepwise", boundary_weight=0.0)

    def step(external: ExternalTeacher) -> dict:
        torch.manual_seed(0)
        student = SlimSegNet(STUDENT).train()
        return slimseg_step(student, images, labels, student.widths, cfg, external=external)

    ran = step(ExternalTeacher(teacher))
    outputs = teacher(images)
    calls = []
    teacher.model.register_forward_hook(lambda *_: calls.append(1))
    reused = step(ExternalTeacher(teacher, outputs=outputs))
    assert not calls  # the teacher did not run again
    assert reused[1.0]["kd"] == pytest.approx(ran[1.0]["kd"])
    assert all(reused[w] == pytest.approx(ran[w]) for w in ran)
    wrong = step(ExternalTeacher(teacher, outputs=teacher(torch.randn(2, 3, 32, 32))))
    assert wrong[1.0]["kd"] != pytest.approx(ran[1.0]["kd"])  # the outputs given are the ones used


def _synthetic(tmp_path: Path, *extra: str):
    return load_train_config(None, [
        "model.num_classes=4", "model.head_channels=32", "data.dataset=synthetic",
        "data.crop_size=[64,64]", "data.scale_range=[0.8,1.2]", "data.batch_size=2",
        "data.workers=0", "data.val_size=[64,64]", "data.options={n: 8, size: 64}",
        "val_every=0", "val_images=2", "optim.warmup_steps=1", "threads=1",
        f"out={tmp_path / 'run'}", *extra,
    ])


@pytest.mark.slow
def test_training_with_a_teacher_and_ka_keeps_adapters_out_of_the_checkpoint(
        tmp_path: Path) -> None:
    teacher = _teacher_file(tmp_path / "teacher.safetensors")
    extra = (f"loss.teacher={teacher}", "loss.ka_ae_steps=3", "loss.ka_latent=32",
             "checkpoint_every=2", "loss.ka_target=adjacent")
    result = train(_synthetic(tmp_path, "steps=2", *extra), progress=False)
    assert (tmp_path / "run" / "ka_autoencoder.safetensors").is_file()
    model, meta = load_checkpoint(result.last_checkpoint)  # strict: no unexpected tensor
    assert set(model.state_dict()) == set(SlimSegNet(STUDENT).state_dict())
    assert meta.training["teacher"] == str(teacher) and meta.training["ka_target"] == "adjacent"
    entry = result.history[-1]["train_loss"]
    assert {"ka_adapt", "ka_affinity", "kd"} <= set(entry["1.0"])
    # resume restores the adapters and reuses the stage-1 autoencoder
    state = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    assert any(k.startswith("feature_adapters.") for k in state["ka"])
    again = train(_synthetic(tmp_path, "steps=3", *extra), progress=False)
    assert again.steps == 3 and len(again.losses) == 1


@pytest.mark.slow
def test_ema_tracks_the_weights_and_is_what_gets_saved(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    ema = WeightAverage(model, decay=0.5)
    before = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)  # past the ramp: decay 0.5
    assert torch.allclose(ema.model.weight, before + 0.5)
    result = train(_synthetic(tmp_path, "steps=3", "ema_decay=0.9"), progress=False)
    saved, _ = load_checkpoint(result.last_checkpoint)
    live = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
    key = "net.stem.weight"
    assert torch.equal(saved.state_dict()[key], live["ema"][key])
    assert not torch.equal(saved.state_dict()[key], live["model"][key])
