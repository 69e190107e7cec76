"""python -m dataprep inspect OUT_DIR: what each stage of a run kept and threw away, and why.

The funnel of every stage folder found under OUT_DIR (from their stats.json), then, per stage and drop
reason, a deterministic sample of the dropped documents (the same ones on every call: those whose
doc_id hashes lowest) with the stage's scores and the text's first lines; `--html FILE` writes one page
with the funnel, the samples and a histogram of every score column (kept against dropped). Rows are
read through pyarrow filters a column at a time (blending/stages.py), never a whole folder at once.
Dropped rows carry their text only where the stage ran with --keep-dropped; otherwise the slim
dropped-row index gives doc_id and origin, and `python -m blending locate` the rest.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from blending.stages import StageFolder, column_batches, find_stage_folders, sample_dropped, score_columns

HISTOGRAM_BINS = 20


@dataclass
class ReasonSample:
    stage: str
    reason: str
    count: int  # rows the stage dropped for it (stats.json)
    rows: list[dict]  # the sample


@dataclass
class Histogram:
    stage: str
    column: str
    edges: list[float]
    kept: list[int]
    dropped: dict[str, list[int]] = field(default_factory=dict)  # per reason


@dataclass
class Inspection:
    folders: list[StageFolder]
    samples: list[ReasonSample]
    histograms: list[Histogram]


def inspect(out_dir: str | Path, stage: str | None = None, reason: str | None = None, sample: int = 5,
            histograms: bool = False) -> Inspection:
    folders = find_stage_folders(out_dir)
    if not folders:
        raise FileNotFoundError(f"{out_dir}: no finished stage folder (with _SUCCESS) in it or below it")
    chosen = [f for f in folders if stage is None or f.name == stage]
    if not chosen:
        raise KeyError(f"no {stage} stage under {out_dir} (found: {', '.join(f.name for f in folders)})")
    samples = []
    for folder in chosen:
        counts = folder.dropped_counts
        if reason is not None and reason not in counts:
            continue
        for name, count in counts.items():
            if count and (reason is None or name == reason):
                samples.append(ReasonSample(folder.name, name, count, sample_dropped(folder, name, sample)))
    if reason is not None and not any(reason in f.dropped_counts for f in chosen):
        known = sorted({r for f in chosen for r in f.dropped_counts})
        raise KeyError(f"no drop reason {reason!r} in {stage or 'any stage'} (reasons: {', '.join(known)})")
    hists = [h for f in chosen for h in score_histograms(f)] if histograms else []
    return Inspection(folders, samples, hists)


def score_histograms(folder: StageFolder) -> list[Histogram]:
    """Per score column, counts of kept and of each reason's dropped rows over common bins."""
    out = []
    reasons = [r for r, n in folder.dropped_counts.items() if n]
    for column in score_columns(folder):
        low, high = math.inf, -math.inf
        for values in column_batches(folder.parts + folder.dropped_files, column):
            bounds = pc.min_max(values).as_py()
            if bounds["min"] is not None:
                low, high = min(low, bounds["min"]), max(high, bounds["max"])
        if low == math.inf:
            continue
        if high <= low:
            high = low + 1.0
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)

        def count(batches, edges=edges) -> list[int]:
            total = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
            for values in batches:
                data = values.drop_null().to_numpy(zero_copy_only=False)
                total += np.histogram(data[np.isfinite(data)], bins=edges)[0]
            return total.tolist()

        dropped = {r: count(column_batches(folder.dropped_files, column, r)) for r in reasons}
        out.append(Histogram(folder.name, column, edges.tolist(), count(column_batches(folder.parts, column)),
                             {r: c for r, c in dropped.items() if any(c)}))
    return out


# -- text ------------------------------------------------------------------------------------------------


def first_lines(text: str | None, lines: int, width: int = 140) -> list[str]:
    if text is None:
        return []
    return [line.strip()[:width] for line in text.splitlines() if line.strip()][:lines]


def shown_columns(row: dict) -> dict:
    hidden = {"text", "doc_id", "origin", "url", "source", "reason", "in_bytes", "in_rows"}
    return {k: (round(v, 4) if isinstance(v, float) else f"<{len(v)} bytes>" if isinstance(v, bytes) else v)
            for k, v in row.items() if k not in hidden and v is not None}


def funnel_table(folders: list[StageFolder]) -> str:
    rows = [("stage", "folder", "in", "kept", "dropped", "out")]
    for f in folders:
        stats = f.stats or {}
        dropped = stats.get("dropped", {})
        rows.append((f.name, str(f.path), f"{stats.get('in', {}).get('rows', 0):,}",
                     f"{stats.get('kept', {}).get('rows', 0):,}", f"{sum(dropped.values()):,}",
                     f"{stats.get('out', {}).get('rows', 0):,}"))
        for reason, n in dropped.items():
            rows.append(("", f"  {reason}", "", "", f"{n:,}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def format_text(result: Inspection, lines: int = 2) -> str:
    out = [funnel_table(result.folders)]
    for s in result.samples:
        out.append(f"\n{s.stage}: {s.reason} ({s.count:,} dropped; {len(s.rows)} shown)")
        if not s.rows:
            out.append("  (this stage kept no record of its dropped rows; rerun it with --keep-dropped)")
        for row in s.rows:
            columns = "  ".join(f"{k}={v}" for k, v in shown_columns(row).items())
            out.append(f"  {row['doc_id']}  {row.get('origin')}  {row.get('url') or ''}  {columns}".rstrip())
            out += [f"    | {line}" for line in first_lines(row.get("text"), lines)]
            if "text" not in row:
                out.append("    (no text: the stage ran without --keep-dropped; python -m blending locate "
                           f"--stages ... --origin {row.get('origin')} traces it)")
    return "\n".join(out)


# -- html ------------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def _histogram_png(h: Histogram) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    centers = [(a + b) / 2 for a, b in zip(h.edges, h.edges[1:])]
    width = h.edges[1] - h.edges[0]
    # stacked: kept, then each reason's dropped rows on top, so a bar's height is every row in the bin
    ax.bar(centers, h.kept, width=width, label="kept")
    bottom = np.asarray(h.kept, dtype=float)
    for reason, counts in h.dropped.items():
        ax.bar(centers, counts, width=width, bottom=bottom, label=f"dropped: {reason}")
        bottom += np.asarray(counts)
    ax.set_title(f"{h.stage}: {h.column}", fontsize=9)
    ax.set_ylabel("rows", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def write_html(result: Inspection, path: str | Path, lines: int = 4) -> Path:
    import tempfile

    from dataprep.funnel import plot_funnel
    from dataprep.stats import StageStats

    e = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>Curation run inspection</title>",
             "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
             "pre{background:#f4f4f4;padding:4px;white-space:pre-wrap}h3{margin-top:1.5em}</style>",
             "<h1>Curation run inspection</h1><h2>Funnel</h2>", f"<pre>{e(funnel_table(result.folders))}</pre>"]
    stats = [StageStats.from_dict(f.stats) for f in result.folders if f.stats and f.stats.get("in")]
    if stats:
        with tempfile.TemporaryDirectory() as scratch:
            png = Path(scratch) / "funnel.png"
            plot_funnel(stats, png)
            parts.append(f"<img alt='funnel' src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'>")
    parts.append("<h2>Dropped documents, by stage and reason</h2>")
    for s in result.samples:
        parts.append(f"<h3 id='{e(s.stage)}-{e(s.reason)}'>{e(s.stage)}: {e(s.reason)} "
                     f"({s.count:,} dropped; {len(s.rows)} shown)</h3><table><tr><th>doc_id</th><th>origin</th>"
                     "<th>url</th><th>scores</th><th>first lines</th></tr>")
        for row in s.rows:
            scores = ", ".join(f"{k}={v}" for k, v in shown_columns(row).items())
            text = "\n".join(first_lines(row.get("text"), lines)) or "(text not kept)"
            parts.append(f"<tr><td>{e(row['doc_id'])}</td><td>{e(str(row.get('origin')))}</td>"
                         f"<td>{e(row.get('url') or '')}</td><td>{e(scores)}</td><td><pre>{e(text)}</pre></td></tr>")
        parts.append("</table>")
    if result.histograms:
        parts.append("<h2>Score histograms</h2>")
        for h in result.histograms:
            parts.append(f"<img alt='{e(h.stage)} {e(h.column)}' src='data:image/png;base64,{_histogram_png(h)}'>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataprep inspect", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a run folder (python -m dataprep run --out) or a stage folder")
    parser.add_argument("--stage", help="only this stage")
    parser.add_argument("--reason", help="only this drop reason")
    parser.add_argument("--sample", type=int, default=5, metavar="N", help="dropped documents shown per reason (default 5)")
    parser.add_argument("--lines", type=int, default=2, help="first lines of each text (default 2)")
    parser.add_argument("--html", metavar="FILE", help="also write one HTML page with funnel, samples and score histograms")
    args = parser.parse_args(argv)
    try:
        result = inspect(args.out_dir, args.stage, args.reason, args.sample, histograms=bool(args.html))
    except (FileNotFoundError, KeyError) as error:
        print(f"error: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 2
    print(format_text(result, args.lines))
    if args.html:
        print(f"\nwrote {write_html(result, args.html)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
