"""experiments/ablation.py: the aggregate JSON has the issue's shape and the right statistics."""

from __future__ import annotations

import statistics

import pytest

from script_utils import load_script


def _ablation():
    return load_script("experiments/ablation.py")


def _val(miou: float) -> dict:
    return {str(w): {"miou": miou + w / 10, "boundary_f1": miou / 2, "interior_miou": miou + 0.05}
            for w in (0.25, 0.5, 0.75, 1.0)}


def test_aggregate_means_and_spreads_per_arm_and_width() -> None:
    ab = _ablation()
    runs = {"slimseg_s0": {"val": _val(0.40)}, "slimseg_s1": {"val": _val(0.44)}}
    # independent networks: one run per width and seed, each scored at its own width only
    for seed, base in ((0, 0.30), (1, 0.36)):
        for w in ab.WIDTHS:
            runs[f"independent_w{w}_s{seed}"] = {"val": {str(w): _val(base)[str(w)]}}
    doc = ab.aggregate(runs, ["slimseg", "independent", "ce_only"], [0, 1], steps=3000)
    assert set(doc["arms"]) == {"slimseg", "independent"}  # ce_only has no run yet
    slim = doc["arms"]["slimseg"]
    assert slim["seeds"] == [0, 1] and slim["steps"] == 3000
    assert set(slim["widths"]) == {"0.25", "0.5", "0.75", "1.0"}
    w1 = slim["widths"]["1.0"]
    assert w1["miou_mean"] == pytest.approx(0.52)
    assert w1["miou_std"] == pytest.approx(statistics.pstdev([0.50, 0.54]))
    assert w1["boundary_f1_mean"] == pytest.approx(0.21)
    assert w1["interior_miou_mean"] == pytest.approx(0.47)
    ind = doc["arms"]["independent"]["widths"]["0.25"]
    assert ind["miou_mean"] == pytest.approx(0.355)


def test_one_seed_has_zero_spread_and_the_table_marks_missing_widths() -> None:
    ab = _ablation()
    runs = {"ce_only_s0": {"val": _val(0.40)},
            "independent_w1.0_s0": {"val": {"1.0": _val(0.30)["1.0"]}}}
    doc = ab.aggregate(runs, ["ce_only", "independent"], [0, 1, 2], steps=100)
    assert doc["arms"]["ce_only"]["seeds"] == [0]
    assert doc["arms"]["ce_only"]["widths"]["0.5"]["miou_std"] == 0.0
    rows = ab.table(doc, "miou").splitlines()
    assert rows[0] == "| width | ce_only | independent |"
    assert rows[2] == "| 0.25 | 0.425 ± 0.000 | - |"
    assert rows[5] == "| 1.0 | 0.500 ± 0.000 | 0.400 ± 0.000 |"


def test_pending_runs_are_seed_major_and_skip_finished_ones() -> None:
    ab = _ablation()
    todo = ab.pending_runs(["slimseg", "independent"], [0, 1],
                           {"slimseg_s0", "independent_w0.5_s0"})
    assert [r[0] for r in todo] == [
        "independent_w0.25_s0", "independent_w0.75_s0", "independent_w1.0_s0",
        "slimseg_s1", "independent_w0.25_s1", "independent_w0.5_s1", "independent_w0.75_s1",
        "independent_w1.0_s1"]
    assert todo[0][3] == ["train_widths=[0.25]"] and todo[3][3] == []


def _runs(values: dict[str, list[float]], metric: str = "miou") -> dict:
    """Runs whose every width scores values[arm][seed] on ``metric``."""
    ab = _ablation()
    runs: dict = {}
    for arm, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            for w in ab.WIDTHS:
                run = runs.setdefault(ab.run_name(arm, seed, w), {"val": {}})
                run["val"][str(w)] = {metric: v}
    return runs


def test_verdicts_need_a_consistent_gap_larger_than_the_seed_spread() -> None:
    ab = _ablation()
    seeds = [0, 1, 2]
    better = ab.compare(_runs({"slimseg": [0.50, 0.52, 0.51], "independent": [0.45, 0.46, 0.47]}),
                        "slimseg", "independent", "miou", seeds)["1.0"]
    assert better["verdict"] == "better" and better["diff_mean"] == pytest.approx(0.05)
    assert better["diffs"] == pytest.approx([0.05, 0.06, 0.04]) and better["seeds"] == 3
    worse = ab.compare(_runs({"slimseg": [0.40, 0.41, 0.42], "independent": [0.45, 0.46, 0.47]}),
                       "slimseg", "independent", "miou", seeds)["0.25"]
    assert worse["verdict"] == "worse"
    mixed = ab.compare(_runs({"slimseg": [0.50, 0.44, 0.51], "independent": [0.45, 0.46, 0.47]}),
                       "slimseg", "independent", "miou", seeds)["0.5"]
    assert mixed["verdict"] == "not separable"  # one seed disagrees
    # same sign everywhere, but smaller than what a reseed moves an arm by
    noisy = ab.compare(_runs({"slimseg": [0.40, 0.56], "independent": [0.39, 0.55]}),
                       "slimseg", "independent", "miou", [0, 1])["0.75"]
    assert noisy["verdict"] == "not separable"
    one = ab.compare(_runs({"slimseg": [0.5], "independent": [0.3]}),
                     "slimseg", "independent", "miou", [0])["1.0"]
    assert one["verdict"] == "one seed"


def test_verdict_table_covers_both_claims_and_marks_missing_comparisons() -> None:
    ab = _ablation()
    runs = _runs({"slimseg": [0.50, 0.52], "stepwise_kd": [0.45, 0.46]}, "boundary_f1")
    found = ab.verdicts(runs, [0, 1])
    assert found["2: boundary loss, near borders"]["widths"]["1.0"]["verdict"] == "better"
    assert found["1: slimmable vs independent"]["widths"] == {}  # no independent runs
    rows = ab.verdict_table(found).splitlines()
    assert rows[2] == ("| 1: slimmable vs independent | slimseg - independent "
                       "| miou | - | - | - | - |")
    assert rows[4].endswith("| +0.055 better | +0.055 better | +0.055 better | +0.055 better |")
