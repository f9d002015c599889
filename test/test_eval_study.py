"""The studies' statistics: spread over seeds, seed-paired verdicts, Markdown tables."""

from __future__ import annotations

import statistics

import pytest

from slimseg_ros.eval.study import (
    format_mean_spread, markdown_table, mean_spread, paired_verdict)


def test_mean_and_population_spread_over_seeds() -> None:
    mean, spread = mean_spread([0.50, 0.54])
    assert mean == pytest.approx(0.52) and spread == pytest.approx(statistics.pstdev([0.5, 0.54]))
    assert mean_spread([0.4]) == (0.4, 0.0)  # one seed: no spread
    assert mean_spread([]) == (None, 0.0)


def test_mean_spread_is_written_with_its_spread_only_when_there_is_one() -> None:
    assert format_mean_spread([0.50, 0.54]) == "0.520 ± 0.020"
    assert format_mean_spread([0.5]) == "0.500"
    assert format_mean_spread([0.5], always_spread=True) == "0.500 ± 0.000"
    assert format_mean_spread([0.51234, 0.51234], digits=4) == "0.5123 ± 0.0000"
    assert format_mean_spread([]) == "-"


def test_a_verdict_needs_one_sign_and_a_gap_above_the_seed_spread() -> None:
    better = paired_verdict([(0.50, 0.45), (0.52, 0.46), (0.51, 0.47)])
    assert better["verdict"] == "better" and better["seeds"] == 3
    assert better["diff_mean"] == pytest.approx(0.05)
    assert better["diffs"] == pytest.approx([0.05, 0.06, 0.04])
    assert paired_verdict([(0.40, 0.45), (0.41, 0.46), (0.42, 0.47)])["verdict"] == "worse"
    # one seed disagrees
    assert paired_verdict([(0.50, 0.45), (0.44, 0.46)])["verdict"] == "not separable"
    # the same sign, but less than a reseed moves either arm
    assert paired_verdict([(0.40, 0.39), (0.56, 0.55)])["verdict"] == "not separable"
    assert paired_verdict([(0.5, 0.3)])["verdict"] == "one seed"
    with pytest.raises(ValueError, match="at least one pair"):
        paired_verdict([])


def test_markdown_table_has_a_header_a_rule_and_a_line_per_row() -> None:
    text = markdown_table(["width", "val"], [["0.25", "0.500"], [1.0, None]])
    assert text.splitlines() == ["| width | val |", "| --- | --- |", "| 0.25 | 0.500 |",
                                 "| 1.0 | None |"]
    assert markdown_table(["a"], []) == "| a |\n| --- |"
