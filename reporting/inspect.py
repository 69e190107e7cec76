"""python -m reporting inspect OUT_DIR: what each stage of a run kept and threw away, and why.

The funnel of every stage folder found under OUT_DIR (from their stats.json), then, per stage and drop
reason, a deterministic sample of the dropped documents (the same ones on every call: those whose
doc_id hashes lowest) with the stage's scores and the text's first lines; `--html FILE` writes one page
with the funnel, the samples and a histogram of every score column (kept against dropped). Rows are
read through pyarrow filters a column at a time (blending/stages.py), never a whole folder at once.
Dropped rows carry their text only where the stage ran with --keep-dropped; otherwise the slim
dropped-row index gives doc_id and origin, and `python -m blending locate` the rest; `--pages` re-reads
each sampled WARC record without text from the file the extract stage read (local, s3:// or https://,
one Range request each) and shows its URL and the page's first lines.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from blending.stage_folder import InputError
from blending.stages import StageFolder, find_stage_folders, sample_dropped
from blending.terminal import printable
from reporting.collect import Stage, labeller, stages_of
from reporting.figures import png_base64
from reporting.funnel import funnel_table, plot_funnel
from reporting.scores import Histogram, plot_histogram, score_histograms


@dataclass
class ReasonSample:
    stage: str
    reason: str
    count: int  # rows the stage dropped for it (stats.json)
    rows: list[dict]  # the sample


@dataclass
class Inspection:
    folders: list[StageFolder]
    stages: list[Stage]  # the folders with accounting, labelled by their path under OUT_DIR
    samples: list[ReasonSample]
    histograms: list[Histogram]


def inspect(out_dir: str | Path, stage: str | None = None, reason: str | None = None, sample: int = 5,
            histograms: bool = False, pages: bool = False) -> Inspection:
    folders = find_stage_folders(out_dir)
    if not folders:
        raise FileNotFoundError(f"{out_dir}: no finished stage folder (with _SUCCESS) in it or below it")
    chosen = [f for f in folders if stage is None or f.name == stage]
    if not chosen:
        raise InputError(f"--stage {stage}: no such stage under {out_dir} (found: {', '.join(f.name for f in folders)})")
    if reason is not None and not any(reason in f.dropped_counts for f in chosen):
        known = sorted({r for f in chosen for r in f.dropped_counts})
        raise InputError(f"--reason {reason}: no such drop reason in {stage or 'any stage'} (reasons: {', '.join(known)})")
    samples = [ReasonSample(folder.name, name, count, sample_dropped(folder, name, sample))
               for folder in chosen for name, count in folder.dropped_counts.items()
               if count and (reason is None or name == reason)]
    if pages:
        for row in (row for s in samples for row in s.rows if row.get("text") is None):
            row["_record"] = _record(row.get("origin"), folders)
    relative = labeller([Path(out_dir)])
    stages = stages_of(folders, lambda path: path.name if relative(path) == "." else relative(path))
    hists = [h for s in stages if s.found in chosen for h in score_histograms(s.found, label=s.label)] if histograms else []
    return Inspection(folders, stages, samples, hists)


def _record(origin: str | None, folders: list[StageFolder]) -> dict | str | None:
    """The WARC record behind a dropped row's origin, re-read from the file the extract stage read (local,
    s3:// or https://: one Range request); the error as a string when it cannot be read."""
    from blending.locate import LocateError, record_of

    try:
        return record_of(origin, None, folders) if origin else None
    except LocateError as e:
        return str(e)


# -- text ------------------------------------------------------------------------------------------------


def first_lines(text: str | None, lines: int, width: int = 140) -> list[str]:
    if text is None:
        return []
    return [printable(line.strip()[:width]) for line in text.splitlines() if line.strip()][:lines]


def shown_columns(row: dict) -> dict:
    hidden = {"text", "doc_id", "origin", "url", "source", "reason", "in_bytes", "in_rows", "_record"}
    return {k: (round(v, 4) if isinstance(v, float) else f"<{len(v)} bytes>" if isinstance(v, bytes) else v)
            for k, v in row.items() if k not in hidden and v is not None}


def format_text(result: Inspection, lines: int = 2) -> str:
    out = [funnel_table(result.stages).text()]
    for s in result.samples:
        out.append(f"\n{s.stage}: {s.reason} ({s.count:,} dropped; {len(s.rows)} shown)")
        if not s.rows:
            out.append("  (this stage kept no record of its dropped rows; rerun it with --keep-dropped)")
        for row in s.rows:
            columns = "  ".join(f"{k}={v}" for k, v in shown_columns(row).items())
            line = f"  {row['doc_id']}  {row.get('origin')}  {row.get('url') or ''}  {columns}".rstrip()
            out.append(printable(line))
            out += [f"    | {line}" for line in first_lines(row.get("text"), lines)]
            record = row.get("_record")
            if isinstance(record, dict):
                out.append(printable(f"    record {record['http_status'] or ''} {record['target_uri'] or ''} "
                                     f"(read from {record['location']})"))
                out += [f"    | {line}" for line in first_lines(record["page"], lines)]
            elif record:
                out.append(printable(f"    {record}"))
            elif "text" not in row:
                out.append("    (no text: the stage ran without --keep-dropped; python -m blending locate "
                           f"--stages ... --origin {row.get('origin')} traces it)")
    return "\n".join(out)


# -- html ------------------------------------------------------------------------------------------------


def write_html(result: Inspection, path: str | Path, lines: int = 4) -> Path:
    e = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>Curation run inspection</title>",
             "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
             "pre{background:#f4f4f4;padding:4px;white-space:pre-wrap}h3{margin-top:1.5em}</style>",
             "<h1>Curation run inspection</h1><h2>Funnel</h2>", f"<pre>{e(funnel_table(result.stages).text())}</pre>"]
    if result.stages:
        png = io.BytesIO()
        plot_funnel(result.stages, png)
        parts.append(f"<img alt='funnel' src='data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}'>")
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
            parts.append(f"<img alt='{e(h.stage)} {e(h.column)}' src='data:image/png;base64,{png_base64(plot_histogram(h))}'>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def main(out_dir: str, stage: str | None = None, reason: str | None = None, sample: int = 5, lines: int = 2,
         html_file: str | None = None, pages: bool = False) -> int:
    result = inspect(out_dir, stage, reason, sample, histograms=bool(html_file), pages=pages)
    print(format_text(result, lines))
    if html_file:
        print(f"\nwrote {write_html(result, html_file)}")
    return 0
