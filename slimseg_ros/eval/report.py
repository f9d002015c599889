"""Reports of a bag evaluation: ``metrics.json``, ``report.md`` and PNG plots (matplotlib Agg).

Plots:
    ``timeline.png`` (replay): width in use, battery, input/output frame rate and end-to-end
        latency over time, with parameter changes marked;
    ``miou_latency.png``: mIoU against latency, one point per width;
    ``confusion.png``: the row-normalised confusion matrix (overall for a replay, the widest
        width offline).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .width_scores import WidthScores

__all__ = ["format_summary", "write_report", "sliding_rate"]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def sliding_rate(times: Sequence[float], at: Sequence[float], window_s: float = 1.0
                 ) -> np.ndarray:
    """Events per second in the ``window_s`` before each time of ``at``."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    at = np.asarray(at, dtype=np.float64)
    hi = np.searchsorted(t, at, side="right")
    lo = np.searchsorted(t, at - window_s, side="right")
    span = np.minimum(window_s, np.maximum(at, 1e-9))  # shorter window at the very start
    return (hi - lo) / span


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy and array.array
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


# -- tables ------------------------------------------------------------------------------------

def _width_rows(doc: dict[str, Any]) -> list[str]:
    replay = doc.get("mode") == "replay"
    total = doc.get("frames_processed") or 0
    head = ("| width | frames | share | mIoU | pixel acc | boundary F1 | latency p50 ms | "
            "latency p95 ms |" if replay else
            "| width | frames | mIoU | pixel acc | boundary F1 | inference p50 ms |")
    rows = [head, "| " + " | ".join("---" for _ in head.strip("|").split("|")) + " |"]
    for key, r in sorted(doc.get("widths", {}).items(), key=lambda kv: float(kv[0])):
        if replay:
            share = f"{r['frames'] / total:.0%}" if total else "-"
            rows.append(f"| {key} | {r['frames']} | {share} | {_fmt(r['miou'])} | "
                        f"{_fmt(r['pixel_acc'])} | {_fmt(r['boundary_f1'])} | "
                        f"{_fmt(r['latency_ms_p50'], 1)} | {_fmt(r['latency_ms_p95'], 1)} |")
        else:
            rows.append(f"| {key} | {r['frames']} | {_fmt(r['miou'])} | {_fmt(r['pixel_acc'])} "
                        f"| {_fmt(r['boundary_f1'])} | {_fmt(r['latency_ms_p50'], 1)} |")
    overall = doc.get("overall")
    if replay and overall:
        rows.append(f"| **all** | {overall['frames']} | 100% | {_fmt(overall['miou'])} | "
                    f"{_fmt(overall['pixel_acc'])} | {_fmt(overall['boundary_f1'])} | "
                    f"{_fmt(overall['latency_ms_p50'], 1)} | "
                    f"{_fmt(overall['latency_ms_p95'], 1)} |")
    return rows


def format_summary(doc: dict[str, Any], table: bool = True) -> str:
    """The console summary: frames, fps, latency, width timeline, and (``table``) the
    per-width table with mIoU."""
    lines = []
    if doc.get("mode") == "replay":
        lat = doc.get("latency_ms") or {}
        fps = doc.get("fps") or {}
        fraction = doc.get("processed_fraction")
        percent = None if fraction is None else fraction * 100
        lines.append(
            f"frames: {doc['frames_sent']} sent, {doc['frames_processed']} processed "
            f"({_fmt(percent, 1)}%), {doc['frames_dropped']} dropped, "
            f"{doc['frames_scored']} scored")
        foreign = (doc.get("unexpected_outputs") or 0) + (doc.get("duplicate_outputs") or 0)
        if foreign:
            lines.append(f"WARNING: {foreign} answers were for frames not sent (or sent once "
                         f"and answered twice): another camera or node shares these topics")
        lines.append(f"fps: input {_fmt(fps.get('input'), 1)}, "
                     f"output {_fmt(fps.get('output'), 1)}; end-to-end latency p50 "
                     f"{_fmt(lat.get('p50'), 1)} ms, "
                     f"p95 {_fmt(lat.get('p95'), 1)} ms, max {_fmt(lat.get('max'), 1)} ms")
        lines.append("width timeline (and parameter changes):")
        events = [(s["t"], f"width {s['width']:g}  {s['reason']}")
                  for s in doc.get("width_timeline", [])]
        for p in doc.get("param_changes", []):
            ok = {True: "accepted", False: "REJECTED", None: "no answer"}[p.get("successful")]
            why = f": {p['reason']}" if p.get("reason") else ""
            events.append((p["t"], f"set {p['name']} = {p['value']} ({ok}{why})"))
        for t, text in sorted(events, key=lambda e: e[0]):
            lines.append(f"  {t:7.2f} s  {text}")
    else:
        lines.append(f"frames: {doc.get('images')} labelled frames, every width on each")
    if table:
        lines.append("")
        lines.extend(_width_rows(doc))
    return "\n".join(lines)


def _markdown(doc: dict[str, Any], plots: list[str], title: str, command: str | None) -> str:
    out = [f"# {title}", ""]
    if doc.get("warning"):
        out += [f"> **{doc['warning']}**", ""]
    if command:
        out += ["Command:", "", "```", command, "```", ""]
    out += [f"- bag: `{doc.get('bag')}`", f"- mode: {doc.get('mode')}",
            f"- model: `{doc.get('model') or 'default'}`"]
    if doc.get("mode") == "replay":
        node = doc.get("node") or {}
        cond = (doc.get("conditions") or {}).get("start", {})
        how = "started by the replay" if node.get("spawned") else "already running"
        out += [f"- node: `{node.get('name')}` ({how}), "
                f"parameters `{json.dumps(node.get('params', {}))}`",
                f"- speed x{doc.get('speed')}, loops {doc.get('loops')}, "
                f"{doc.get('duration_s')} s of replay",
                f"- machine: {cond.get('cpu_count')} CPUs, load average "
                f"{cond.get('loadavg_1min')} at the start, "
                f"{(doc.get('conditions') or {}).get('end', {}).get('loadavg_1min')} at the end"]
    out += ["", "## Summary", "", "```", format_summary(doc, table=False), "```", ""]
    out += ["## Per width", ""] + _width_rows(doc) + [""]
    if doc.get("mode") == "replay":
        out += ["`frames` counts the answers made at that width (the last `~/width` received "
                "before each answer); latency is end to end, publish to labels received.", ""]
        diag = doc.get("node_diagnostics")
        if diag:
            out += ["## The node's last diagnostics", "", "| key | value |", "| --- | --- |"]
            out += [f"| {k} | {v} |" for k, v in diag.items()] + [""]
    for name in plots:
        out += [f"![{name}]({name})", ""]
    return "\n".join(out)


# -- plots -------------------------------------------------------------------------------------

def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _timeline_plot(doc: dict[str, Any], path: Path) -> None:
    plt = _plt()
    frames = doc.get("frames", [])
    end = max([doc.get("duration_s") or 0.0] + [f["t_sent"] for f in frames]) + 0.5
    fig, axes = plt.subplots(4, 1, figsize=(9, 8.5), sharex=True)
    ax_w, ax_b, ax_f, ax_l = axes
    switches = doc.get("width_timeline", [])
    if switches:
        ts = [s["t"] for s in switches] + [end]
        ws = [s["width"] for s in switches] + [switches[-1]["width"]]
        ax_w.step(ts, ws, where="post", color="tab:blue", label="~/width")
    done = [f for f in frames if f["width"] is not None]
    ax_w.plot([f["t_received"] for f in done], [f["width"] for f in done], ".", ms=3,
              color="tab:blue", alpha=0.5, label="answers")
    ax_w.set_ylabel("width")
    ax_w.set_ylim(0, 1.15)
    ax_w.legend(loc="upper right", fontsize=8)
    battery = doc.get("battery_timeline") or []
    if battery:
        ax_b.plot([b[0] for b in battery], [b[1] * 100 for b in battery], color="tab:green")
    else:
        ax_b.text(0.5, 0.5, "no battery messages", ha="center", va="center",
                  transform=ax_b.transAxes)
    at_start = (doc.get("node") or {}).get("at_start") or {}
    for threshold, cap in zip(at_start.get("battery_thresholds") or [],
                              at_start.get("battery_widths") or []):
        ax_b.axhline(threshold * 100, color="tab:green", ls=":", lw=0.8)
        ax_b.annotate(f"cap {cap:g}", (0, threshold * 100), fontsize=7, color="tab:green",
                      xytext=(2, 2), textcoords="offset points")
    ax_b.set_ylabel("battery %")
    ax_b.set_ylim(0, 105)
    grid = np.arange(0.5, end, 0.25)
    if len(grid):
        ax_f.plot(grid, sliding_rate([f["t_sent"] for f in frames], grid), label="input",
                  color="tab:gray")
        ax_f.plot(grid, sliding_rate([f["t_received"] for f in done], grid), label="output",
                  color="tab:orange")
        ax_f.legend(loc="lower right", fontsize=8)
    ax_f.set_ylabel("frames/s (1 s window)")
    ax_f.set_ylim(bottom=0)
    ax_l.plot([f["t_sent"] for f in done], [f["latency_ms"] for f in done], ".", ms=3,
              color="tab:purple", label="end-to-end latency")
    dropped = [f["t_sent"] for f in frames if f["width"] is None]
    if dropped:
        ax_l.plot(dropped, np.zeros(len(dropped)), "|", color="tab:red", ms=8, label="dropped")
    ax_l.set_ylabel("latency ms")
    ax_l.set_xlabel("time since the first frame (s)")
    if done or dropped:
        ax_l.legend(loc="upper left", fontsize=8)
    for p in doc.get("param_changes", []):
        for ax in axes:
            ax.axvline(p["t"], color="k", ls="--", lw=0.8)
        ax_w.annotate(f"{p['name']}={p['value']}", (p["t"], 1.02), fontsize=8,
                      xytext=(3, 0), textcoords="offset points")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Replay through the node: width, battery, frame rate, latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _miou_latency_plot(doc: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    replay = doc.get("mode") == "replay"
    for key, r in sorted(doc.get("widths", {}).items(), key=lambda kv: float(kv[0])):
        if r.get("miou") is None or r.get("latency_ms_p50") is None:
            continue
        ax.plot(r["latency_ms_p50"], r["miou"], "o", ms=4 + 8 * float(key))
        label = f"w{float(key):g}" + (f" ({r['frames']} frames)" if replay else "")
        ax.annotate(label, (r["latency_ms_p50"], r["miou"]), xytext=(5, 5),
                    textcoords="offset points", fontsize=9)
    ax.set_xlabel("end-to-end latency p50 (ms)" if replay else "inference latency p50 (ms)")
    ax.set_ylabel("mIoU")
    ax.grid(alpha=0.3)
    ax.set_title("mIoU against latency per width" + (" (widths as used)" if replay else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _confusion_plot(matrix: np.ndarray, names: Sequence[str], title: str, path: Path) -> None:
    plt = _plt()
    rows = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where(rows > 0, matrix / np.maximum(rows, 1), np.nan)
    n = len(names)
    fig, ax = plt.subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if not np.isnan(norm[i, j]) and norm[i, j] >= 0.01:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(doc: dict[str, Any], scores: WidthScores | None, out_dir: str | Path, *,
                 title: str = "Bag evaluation", command: str | None = None) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and the plots into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json"]
    written[0].write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    plots: list[str] = []
    if doc.get("mode") == "replay":
        _timeline_plot(doc, out / "timeline.png")
        plots.append("timeline.png")
    if doc.get("widths"):
        _miou_latency_plot(doc, out / "miou_latency.png")
        plots.append("miou_latency.png")
    if scores is not None:
        if doc.get("mode") == "replay" and scores.overall.frames:
            matrix, what = scores.confusion(), "all answers"
        elif scores.widths:
            widest = scores.widths[-1]
            matrix, what = scores.confusion(widest), f"width {widest:g}"
        else:
            matrix = None
        if matrix is not None and matrix.sum() > 0:
            _confusion_plot(matrix, scores.class_names, f"Confusion matrix ({what})",
                            out / "confusion.png")
            plots.append("confusion.png")
    (out / "report.md").write_text(_markdown(doc, plots, title, command))
    written.append(out / "report.md")
    written.extend(out / p for p in plots)
    return written
