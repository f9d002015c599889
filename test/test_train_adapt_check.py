"""``slimseg adapt``'s label-free check: held-back frames, agreement, the per-width choice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import pytest
import torch

from slimseg_ros.data import build_dataset
from slimseg_ros.data.unlabeled import open_unlabeled
from slimseg_ros.model import CheckpointMeta, ModelConfig, SlimSegNet, load_checkpoint
from slimseg_ros.train.adapt import AdaptSettings, adapt_model
from slimseg_ros.train.adapt_check import (
    CANDIDATES, ReferenceLabels, agreement, blend, compose, decide, held_back, same_shared,
    width_owned)

SMALL = ModelConfig(num_classes=4, head_channels=32)
WIDTHS = (0.25, 0.5, 0.75, 1.0)


def test_held_back_frames_are_whole_blocks_apart_from_the_rest() -> None:
    rest, check = held_back(100, 0.2, block=10)
    assert check == list(range(40, 50)) + list(range(90, 100))  # every 5th block of 10
    assert sorted(rest + check) == list(range(100)) and not set(rest) & set(check)
    assert held_back(30, 0.0) == (list(range(30)), [])  # no check: every frame adapts
    assert len(held_back(367, 0.2)[1]) == 70
    with pytest.raises(ValueError, match="too few to hold back"):
        held_back(25, 0.2)  # the fifth block does not exist
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        held_back(100, 1.0)


def _scores(adapted: list[float], input_: list[float] | None = None,
            recalibrated: list[float] | None = None) -> dict[str, dict[float, float]]:
    input_ = input_ or [0.5] * 4
    recalibrated = recalibrated or [0.6] * 4
    return {name: dict(zip(WIDTHS, values)) for name, values in
            (("input", input_), ("recalibrated", recalibrated), ("adapted", adapted))}


def test_adapted_weights_are_kept_only_where_they_beat_both_previous_candidates() -> None:
    # the adapted convolutions are the input model's (only BN learned): an exact choice per width
    d = decide(_scores([0.7, 0.55, 0.6, 0.61], input_=[0.5, 0.58, 0.5, 0.5]), True)
    assert d.choice == {0.25: "adapted", 0.5: "recalibrated", 0.75: "recalibrated",
                        1.0: "adapted"}  # 0.75: a tie keeps the previous weights
    assert d.choice == decide(d.scores, True, margin=0.0).choice
    assert decide(d.scores, True, margin=0.02).choice[1.0] == "recalibrated"
    # recalibration is kept only where it agrees better than the input model did
    assert decide(_scores([0.0] * 4, recalibrated=[0.6, 0.4, 0.6, 0.5]), True).choice == {
        0.25: "recalibrated", 0.5: "input", 0.75: "recalibrated", 1.0: "input"}


def test_adapted_convolutions_are_kept_only_when_every_width_improved() -> None:
    assert set(decide(_scores([0.7] * 4), False).choice.values()) == {"adapted"}
    d = decide(_scores([0.7, 0.7, 0.59, 0.7]), False)
    assert set(d.choice.values()) == {"recalibrated"}
    assert "width 0.75" in d.notes[0] and "widths 0.25, 0.5, 1 scored higher" in d.notes[0]
    assert len(d.lines()) == 5 and d.lines()[0].endswith("kept recalibrated")
    record = d.as_dict()
    assert record["choice"]["0.75"] == "recalibrated" and record["agreement"]["adapted"]["1.0"]
    with pytest.raises(ValueError, match="no agreement scores for adapted"):
        decide({"input": {1.0: 0.1}, "recalibrated": {1.0: 0.2}}, True)


def _states() -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = SlimSegNet(SMALL)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    recal = {k: v + 1 if k.endswith("running_mean") else v.clone() for k, v in base.items()}
    adapted = {k: v + 2 if v.is_floating_point() else v.clone() for k, v in base.items()}
    return {"input": base, "recalibrated": recal, "adapted": adapted}


def test_compose_takes_each_widths_bn_from_its_choice() -> None:
    states = _states()
    assert same_shared(states["input"], states["recalibrated"])
    assert not same_shared(states["input"], states["adapted"])
    owned = [width_owned(states["input"], i) for i in range(4)]
    assert all(owned) and not set(owned[0]) & set(owned[3])
    assert all(".bn.0." in k for k in owned[0])
    d = decide(_scores([0.0] * 4, recalibrated=[0.6, 0.4, 0.6, 0.4]), False)
    mixed = compose(states, d, WIDTHS)
    for i, w in enumerate(WIDTHS):
        source = states[d.choice[w]]
        assert all(torch.equal(mixed[k], source[k]) for k in owned[i])
    assert same_shared(mixed, states["input"])
    # adapted convolutions cannot be mixed with previous ones per width
    forced = decide(_scores([0.7] * 4), False)
    forced.choice[0.5] = "input"
    with pytest.raises(ValueError, match="cannot be mixed per width"):
        compose(states, forced, WIDTHS)


def test_a_blend_is_part_of_the_way_between_two_states() -> None:
    states = _states()
    half = blend(states["recalibrated"], states["adapted"], 0.5)
    key = "net.stem.weight"
    assert torch.allclose(half[key], states["input"][key] + 1)  # adapted = input + 2
    assert all(torch.equal(blend(states["input"], states["adapted"], 1.0)[k], v)
               for k, v in states["adapted"].items())
    counters = [k for k, v in half.items() if not v.is_floating_point()]
    assert counters and all(torch.equal(half[k], states["adapted"][k]) for k in counters)
    d = decide(_scores([0.7] * 4), False, blend=0.5)
    assert d.blend == 0.5 and d.lines()[0].endswith("kept adapted x0.5")
    with pytest.raises(ValueError, match="check_blends must be"):
        AdaptSettings(check_blends=(1.0, 0.0))


def _folder(root: Path, n: int) -> Path:
    ds = build_dataset("synthetic", None, "val", n=n, size=48, num_classes=4)
    root.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / f"frame_{i:03d}.png"), cv2.cvtColor(ds.load(i)[0],
                                                                   cv2.COLOR_RGB2BGR))
    return root


def test_agreement_is_one_with_itself_at_the_references_width(tmp_path: Path,
                                                              make_checkpoint) -> None:
    frames = open_unlabeled(_folder(tmp_path / "frames", 6))
    model, meta = load_checkpoint(make_checkpoint(SMALL, input_size=(48, 48)))
    labels = ReferenceLabels(frames, model, meta)
    assert len(labels) == 6 and labels.load(0)[1].shape == (48, 48)
    scores = agreement(model, meta, labels)
    assert set(scores) == set(model.widths) and scores[1.0] == pytest.approx(1.0)
    assert all(0.0 <= s <= 1.0 for s in scores.values())


def test_adapt_keeps_the_previous_weights_when_the_check_rejects_them(tmp_path: Path,
                                                                       make_checkpoint) -> None:
    frames = open_unlabeled(_folder(tmp_path / "frames", 40))
    checkpoint = make_checkpoint(SMALL, input_size=(48, 48))
    reference = make_checkpoint(SMALL, input_size=(48, 48), seed=1)
    common = dict(runs=1, steps=2, batch_size=2, recalibrate_frames=8, threads=1, lr=1e-2,
                  check_fraction=0.25, check_reference=str(reference))
    original, _ = load_checkpoint(checkpoint)

    def adapted(**kw: object) -> tuple[SlimSegNet, dict, object]:
        model, meta = load_checkpoint(checkpoint)
        meta, result = adapt_model(model, meta, frames, AdaptSettings(**{**common, **kw}),
                                   "test", log=lambda m: None)
        return model, meta.training["adapted"], result

    # a margin no agreement can beat: every width keeps its previous weights, and says so
    model, record, result = adapted(check_margin=1.0)
    assert result.check_frames == 10 and record["check"]["frames"] == 10
    assert set(result.decision.choice.values()) <= {"input", "recalibrated"}
    assert same_shared(model.state_dict(), original.state_dict())
    assert "rejected" in result.decision.notes[0] and result.decision.blend == 0.25  # all tried
    for name in CANDIDATES:
        assert set(result.decision.scores[name]) == set(model.widths)
    # only BN learns: the convolutions stay the input model's (bit for bit, through the soup of
    # three runs: (a + a + a) / 3 need not be a), so the check decides each width alone
    model, record, result = adapted(params="norm", runs=3)
    assert result.decision.shares_convolutions and record["check"]["shares_convolutions"]
    assert same_shared(model.state_dict(), original.state_dict())
    # without the check every width keeps what adaptation made of it
    model, record, result = adapted(check_fraction=0.0)
    assert result.decision is None and record["check"] is None
    assert not torch.equal(model.net.stem.weight, original.net.stem.weight)
    with pytest.raises(ValueError, match="check_fraction must be in"):
        AdaptSettings(check_margin=-0.1)


def test_the_refit_makes_what_the_check_chose_again_from_every_frame(tmp_path: Path,
                                                                     make_checkpoint) -> None:
    from slimseg_ros.train.adapt import _refit
    from slimseg_ros.train.recalibrate import recalibrate_model

    frames = open_unlabeled(_folder(tmp_path / "frames", 40))
    checkpoint = make_checkpoint(SMALL, input_size=(48, 48))
    reference = make_checkpoint(SMALL, input_size=(48, 48), seed=1)
    settings = AdaptSettings(runs=2, steps=2, batch_size=2, recalibrate_frames=40, threads=1,
                             lr=1e-2, check_fraction=0.25, check_reference=str(reference))
    log = lambda m: None  # noqa: E731

    def run(**kw: object) -> tuple[dict[str, torch.Tensor], CheckpointMeta, object]:
        model, meta = load_checkpoint(checkpoint)
        meta, result = adapt_model(model, meta, frames, replace(settings, **kw), "test", log=log)
        return model.state_dict(), meta, result

    original, meta = load_checkpoint(checkpoint)
    everywhere, _, _ = run(check_fraction=0.0)  # adapted on all 40 frames, nothing checked
    recalibrated, _ = load_checkpoint(checkpoint)
    recalibrate_model(recalibrated, meta, frames, frames=40)
    # rejected: each width keeps the previous candidate it chose, made from all 40 frames
    state, meta_out, result = run(check_margin=1.0)
    record = meta_out.training["adapted"]
    assert record["refit"] and record["frames"] == 40 and result.frames == 40
    assert meta_out.training["bn_recalibrated"]["frames"] == 40
    sources = {"input": original.state_dict(), "recalibrated": recalibrated.state_dict()}
    moved = 0
    for i, width in enumerate(WIDTHS):
        source = sources[result.decision.choice[width]]
        keys = width_owned(state, i)
        assert keys and all(torch.equal(state[k], source[k]) for k in keys)
        moved += any(not torch.equal(result.checked[k], state[k]) for k in keys)
    assert moved  # the checked statistics came from 30 frames, the written ones from 40
    # without a refit the checked weights are what is written
    state, meta_out, result = run(check_margin=1.0, refit=False)
    assert not result.checked and meta_out.training["adapted"]["frames"] == 30
    assert meta_out.training["bn_recalibrated"]["frames"] == 30
    # kept: the refit is the adaptation on every frame, and a blend is taken of it
    for t in (1.0, 0.5):
        scores = {"input": {w: 0.1 for w in WIDTHS}, "recalibrated": {w: 0.2 for w in WIDTHS},
                  "adapted": {w: 0.3 for w in WIDTHS}}
        model, start = load_checkpoint(checkpoint)
        _, candidates, steps, _ = _refit(model, start, frames, settings, "test", None,
                                         {"input": original.state_dict()},
                                         decide(scores, False, blend=t), log)
        assert steps == 2 and set(candidates) == set(CANDIDATES)
        out = model.state_dict()
        if t == 1.0:
            assert all(torch.equal(out[k], v) for k, v in everywhere.items())
        else:
            stem = "net.stem.weight"
            assert torch.allclose(out[stem], torch.lerp(original.state_dict()[stem],
                                                        everywhere[stem], t))
