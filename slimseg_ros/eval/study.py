"""Statistics of the studies (experiments/): spread over seeds, seed-paired comparisons, tables.

A study trains each arm once per seed and scores every run; these are the numbers it reports:
the mean and population spread of a score over seeds (:func:`mean_spread`), the verdict of a
seed-paired comparison of two arms (:func:`paired_verdict`), and Markdown tables
(:func:`markdown_table`). Pure Python: no model, no data.
"""

from __future__ import annotations

import statistics
from typing import Any, Iterable, Sequence

__all__ = ["format_mean_spread", "markdown_table", "mean_spread", "paired_verdict"]


def mean_spread(values: Sequence[float]) -> tuple[float | None, float]:
    """Mean and population standard deviation of ``values`` (a seed's score each).

    One value has no spread (0.0); no values give ``(None, 0.0)``.
    """
    if not values:
        return None, 0.0
    mean = statistics.mean(values)
    return mean, statistics.pstdev(values) if len(values) > 1 else 0.0


def format_mean_spread(values: Sequence[float], digits: int = 3, *,
                       always_spread: bool = False) -> str:
    """``"0.512 ± 0.004"``; a single value without ``± ...`` unless ``always_spread``; ``"-"``
    for none."""
    mean, spread = mean_spread(values)
    if mean is None:
        return "-"
    if len(values) > 1 or always_spread:
        return f"{mean:.{digits}f} ± {spread:.{digits}f}"
    return f"{mean:.{digits}f}"


def paired_verdict(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Compare an arm with a reference on seed-paired scores ``(arm, reference)``.

    Returns ``{"diff_mean", "diffs", "seeds", "verdict"}`` with the differences arm - reference.
    The verdict is ``"better"`` / ``"worse"`` when every paired difference has the same sign and
    their mean exceeds the larger seed-to-seed spread (population std) of the two arms;
    otherwise ``"not separable"``. One pair gives no spread to compare with: ``"one seed"``.

    Raises:
        ValueError: no pairs.
    """
    if not pairs:
        raise ValueError("a paired comparison needs at least one pair of scores")
    diffs = [a - b for a, b in pairs]
    mean = statistics.mean(diffs)
    if len(pairs) < 2:
        verdict = "one seed"
    else:
        spread = max(statistics.pstdev([a for a, _ in pairs]),
                     statistics.pstdev([b for _, b in pairs]))
        same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
        verdict = ("not separable" if not same_sign or abs(mean) <= spread
                   else "better" if mean > 0 else "worse")
    return {"diff_mean": mean, "diffs": diffs, "seeds": len(pairs), "verdict": verdict}


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table: a header of ``columns``, then one line per row (cells as ``str``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
