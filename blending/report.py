"""The run's report: what every stage did, what the blend holds, how training went.

    python -m blending report out/demo out/documents --out out/demo/report   # index.html, report.md, PNGs

It reads only what the runs wrote, so a stage added to the pipeline shows up without a change here:
- stage folders (stats.json + _SUCCESS) under the roots, in pipeline order by their lineage (each
  _SUCCESS names what it read: blending.stages);
- the blend: the first manifest.json found (its sources, weights and token counts);
- training runs (metrics.csv, valid.csv, summary.json, config.json, loss.png) and eval.json files.
Plots: the funnel, quality scores and duplicate-cluster sizes when a stage wrote those columns, the
loss curves. The folder is self-contained (index.html opens from disk, no server, no script).
It imports no Spark, no torch and neither service, so it runs in either image.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from blending.stages import find_stage_folders

MANIFEST = "manifest.json"
MAX_SCORED_ROWS = 2_000_000  # rows read for a histogram; more are sampled by part file


@dataclass
class Stage:
    folder: Path
    label: str  # the folder's path under the roots
    stats: dict

    @property
    def name(self) -> str:
        return self.stats["stage"]

    @property
    def dropped(self) -> int:
        return sum(self.stats["dropped"].values())


@dataclass
class Run:
    folder: Path
    label: str
    config: dict
    summary: dict
    train: list[dict]
    valid: list[dict]


@dataclass
class Report:
    roots: list[Path]
    stages: list[Stage]
    manifest: dict | None
    manifest_label: str | None
    runs: list[Run]
    evals: dict[str, dict]  # label of eval.json -> its content

    @property
    def bytes_per_token(self) -> float | None:
        """Text bytes per token of the blend: the rate at which earlier stages' text becomes tokens."""
        for stage in self.stages:
            tokens = stage.stats["out"].get("tokens")
            if tokens and stage.stats["kept"]["bytes"]:
                return stage.stats["kept"]["bytes"] / tokens
        return None


# --- finding what the runs wrote -------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _folders(root: Path, out: Path):
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        # temporary and replaced outputs, the report itself, checkpoints, caches: nothing to report
        dirs[:] = sorted(d for d in dirs if ".tmp-" not in d and ".old-" not in d and d not in
                         ("checkpoints", "index-cache", "tensorboard")
                         and (here / d).resolve() != out.resolve())
        yield here, set(files)


def collect(roots: str | Path | list, out: str | Path) -> Report:
    """What the runs under `roots` wrote; labels are paths under the roots' common folder (under the
    root itself when there is one)."""
    roots = [Path(r) for r in ([roots] if isinstance(roots, str | Path) else roots)]
    out = Path(out)
    base = (roots[0] if len(roots) == 1 else Path(os.path.commonpath([r.resolve() for r in roots]))).resolve()

    def label(folder: Path) -> str:
        return folder.resolve().relative_to(base).as_posix()

    # Stage folders in pipeline order, by the inputs each _SUCCESS records (blending.stages).
    stages = [Stage(f.path, label(f.path), f.stats) for f in find_stage_folders(roots)
              if f.stats and "in" in f.stats and f.path.resolve() != out.resolve()]
    runs, evals = [], {}
    manifest, manifest_label = None, None
    for folder, files in (item for root in roots for item in _folders(root, out)):
        if MANIFEST in files and manifest is None:
            content = _read_json(folder / MANIFEST)
            if content and "sources" in content and "tokenizer" in content:
                manifest, manifest_label = content, label(folder)
        if "metrics.csv" in files and "config.json" in files:
            runs.append(Run(folder, label(folder), _read_json(folder / "config.json") or {},
                            _read_json(folder / "summary.json") or {}, _read_csv(folder / "metrics.csv"),
                            _read_csv(folder / "valid.csv")))
        # trainer.evaluate's results: eval.json, and a run's eval/step_N.json (trainer.train --eval-tasks)
        for name in sorted(f for f in files if f == "eval.json" or (folder.name == "eval" and f.startswith("step_")
                                                                     and f.endswith(".json"))):
            evals[f"{label(folder)}/{name}"] = _read_json(folder / name) or {}
    return Report(roots, stages, manifest, manifest_label, runs, evals)


# --- figures ---------------------------------------------------------------------------------------


def blend_rows(manifest: dict, training_tokens: int | None) -> list[dict]:
    """The paper's Table 1 for this blend: per source its training tokens, weight and the epochs that
    `training_tokens` draw from it (weight x training tokens / source tokens)."""
    sources = manifest.get("sources", {})
    total_weight = sum(s["weight"] for s in sources.values()) or 1.0
    rows = []
    for name, source in sources.items():
        tokens = sum(shard["tokens"] for shard in source.get("train", []))
        documents = sum(shard["documents"] for shard in source.get("train", []))
        valid = sum(shard["tokens"] for shard in source.get("valid", []))
        weight = source["weight"] / total_weight
        epochs = weight * training_tokens / tokens if training_tokens and tokens else None
        rows.append({"source": name, "documents": documents, "tokens": tokens, "valid_tokens": valid,
                     "weight": weight, "epochs": epochs})
    return rows


def scored_values(stage: Stage, column: str) -> tuple[list[float], list[float]]:
    """A numeric column of a stage's kept rows and, when it kept them, its dropped rows."""
    import pyarrow.parquet as pq

    def read(folder: Path) -> list[float]:
        parts = sorted(folder.glob("part-*.parquet"))
        values: list[float] = []
        for part in parts:
            if column not in pq.read_schema(part).names:
                return []
            values += [v for v in pq.read_table(part, columns=[column]).column(column).to_pylist() if v is not None]
            if len(values) >= MAX_SCORED_ROWS:
                break
        return values

    return read(stage.folder), read(stage.folder / "dropped")


def cluster_sizes(stage: Stage) -> Counter:
    """{cluster size: clusters} from the `cluster_id` of a dedup stage's kept and dropped rows."""
    import pyarrow.parquet as pq

    members: Counter = Counter()
    for folder in (stage.folder, stage.folder / "dropped"):
        for part in sorted(folder.glob("part-*.parquet")):
            if "cluster_id" not in pq.read_schema(part).names:
                break
            members.update(v for v in pq.read_table(part, columns=["cluster_id"]).column(0).to_pylist() if v is not None)
    return Counter(members.values())


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _plt().close(fig)


def plot_funnel(report: Report, path: Path) -> None:
    """Per stage a bar of its input rows: kept, then each drop reason; beside it, the text left."""
    plt = _plt()
    stages = report.stages
    reasons = list(dict.fromkeys(r for s in stages for r, n in s.stats["dropped"].items() if n))
    legend_rows = (len(reasons) + 1 + 3) // 4
    fig, (rows_ax, bytes_ax) = plt.subplots(1, 2, figsize=(11, 0.55 * len(stages) + 1.8 + 0.25 * legend_rows),
                                            gridspec_kw={"width_ratios": [3, 1.3]})
    y = list(range(len(stages)))[::-1]
    # tab20 without its blues (kept is blue): the dark shades first, then the light ones, 18 distinct colours
    tab20 = plt.get_cmap("tab20").colors
    palette = [tab20[i] for i in (*range(2, 20, 2), *range(3, 20, 2))]
    colors = {r: palette[i % len(palette)] for i, r in enumerate(reasons)}
    widest = max([s.stats["in"]["rows"] for s in stages] + [1])
    for yi, stage in zip(y, stages):
        kept = stage.stats["kept"]["rows"]
        rows_ax.barh(yi, kept, color="#3b7dd8")
        left = kept
        for reason, n in stage.stats["dropped"].items():
            if n:
                rows_ax.barh(yi, n, left=left, color=colors[reason])
                left += n
        rows_ax.text(left, yi, f"  {kept:,} of {stage.stats['in']['rows']:,} kept", va="center", fontsize=8)
    rows_ax.set_yticks(y, [f"{s.label} ({s.name})" for s in stages], fontsize=8)
    rows_ax.set_xlim(0, widest * 1.35)
    rows_ax.set_xlabel("rows in")
    rows_ax.set_title("Rows per stage: kept, and dropped by reason", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ["#3b7dd8", *colors.values()]]
    fig.legend(handles, ["kept", *reasons], fontsize=8, loc="lower center", ncol=4, frameon=False)
    out_mb = [s.stats["out"]["bytes"] / 1e6 for s in stages]
    bytes_ax.barh(y, out_mb, color="#7aa974")
    per_token = report.bytes_per_token
    for yi, stage, mb in zip(y, stages, out_mb):
        tokens = stage.stats["out"].get("tokens") or (stage.stats["out"]["bytes"] / per_token if per_token else None)
        bytes_ax.text(mb, yi, f"  {mb:.2f} MB" + (f", {_human(tokens)} tok" if tokens else ""), va="center", fontsize=7)
    bytes_ax.set_yticks(y, [""] * len(stages))
    bytes_ax.set_xlim(0, max(out_mb + [0.001]) * 1.9)
    bytes_ax.set_xlabel("MB out")
    bytes_ax.set_title("Text out (tokens for the blend)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * legend_rows, 1, 1))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def plot_scores(kept: list[float], dropped: list[float], stage: Stage, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bins = [i / 40 for i in range(41)]
    ax.hist([kept, dropped] if dropped else [kept], bins=bins, stacked=True,
            color=["#3b7dd8", "#e8a33d"][: 2 if dropped else 1],
            label=["kept", "dropped"] if dropped else ["kept"])
    ax.set_xlabel("quality_score (classifier's probability of curated prose)")
    # log scale: web text a good classifier keeps piles up near 1, and the few dropped must stay visible
    ax.set_yscale("log")
    ax.set_ylabel("documents (log scale)")
    ax.set_title(f"Quality scores ({stage.label})", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_clusters(sizes: Counter, stage: Stage, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = sorted(sizes)
    ax.bar([str(x) for x in xs], [sizes[x] for x in xs], color="#3b7dd8")
    ax.set_xlabel("documents in the duplicate cluster")
    ax.set_ylabel("clusters")
    ax.set_title(f"Duplicate clusters ({stage.label}): one document kept per cluster", fontsize=10)
    _save(fig, path)


# --- writing ---------------------------------------------------------------------------------------


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


NUMERIC = ' class="n"'


class Page:
    """The report as a list of blocks, written as HTML and as Markdown from the same calls."""

    def __init__(self):
        self.html: list[str] = []
        self.md: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level} id=\"{_anchor(text)}\">{html.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {text}\n")

    def para(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def image(self, name: str, alt: str) -> None:
        self.html.append(f"<p><img src=\"{html.escape(name)}\" alt=\"{html.escape(alt)}\"></p>")
        self.md.append(f"![{alt}]({name})\n")

    def table(self, header: list[str], rows: list[list], numeric_from: int = 1, classes: list[str] | None = None) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = []
        for i, row in enumerate(rows):
            cls = f" class=\"{classes[i]}\"" if classes and classes[i] else ""
            tds = "".join(f"<td{NUMERIC if j >= numeric_from else ''}>{html.escape(str(c))}</td>"
                          for j, c in enumerate(row))
            body.append(f"<tr{cls}>{tds}</tr>")
        self.html.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        self.md.append("| " + " | ".join(header) + " |\n|" + "|".join(
            "---" if j < numeric_from else "---:" for j in range(len(header))) + "|\n" +
            "".join("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |\n" for row in rows))

    def details(self, summary: str, lines: list[str]) -> None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.html.append(f"<details><summary>{html.escape(summary)}</summary><ul>{items}</ul></details>")
        self.md.append(f"{summary}:\n\n" + "".join(f"- {line}\n" for line in lines))


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:left}th{background:#f3f5f8}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.reason td{color:#555;font-size:13px}tr.reason td:first-child{padding-left:2em}
tr.total td{font-weight:600}
img{max-width:100%;border:1px solid #eee}
p.note{color:#555;font-size:13px}
details{margin:.3em 0}summary{cursor:pointer}
nav a{margin-right:1em}
"""


def _extra_lines(extra: dict) -> list[str]:
    """A stage's `extra` in a few lines: histograms as their first entries, lists by their length."""
    lines = []
    for key, value in extra.items():
        if isinstance(value, dict) and value and all(isinstance(v, int | float) for v in value.values()):
            shown = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:.4g}" for k, v in list(value.items())[:12])
            lines.append(f"{key}: {shown}" + (f", ... ({len(value)} in all)" if len(value) > 12 else ""))
        elif isinstance(value, list):
            lines.append(f"{key}: {len(value)} listed" + (f" (first: {json.dumps(value[0])[:160]})" if value else ""))
        elif isinstance(value, int | float | str | bool) or value is None:
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}: {json.dumps(value)[:200]}")
    return lines


def write_report(report: Report, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()  # a plot whose data is gone must not stay behind
    page = Page()
    run = report.runs[-1] if report.runs else None
    first = report.stages[0] if report.stages else None
    last_docs = next((s for s in reversed(report.stages) if s.name != "blend"), None)

    figures = []
    if first:
        figures.append(["input rows", f"{first.stats['in']['rows']:,}", f"{first.label} ({first.name})"])
    if last_docs:
        figures.append(["documents after curation", f"{last_docs.stats['out']['rows']:,}",
                        f"{last_docs.label}, {_mb(last_docs.stats['out']['bytes'])} of text"])
    if report.manifest:
        rows = blend_rows(report.manifest, None)
        figures.append(["tokens in the blend", f"{sum(r['tokens'] for r in rows):,} train + "
                        f"{sum(r['valid_tokens'] for r in rows):,} valid",
                        f"{len(rows)} source(s), vocabulary {report.manifest['tokenizer']['vocab_size']:,}"])
    if run and run.summary:
        s = run.summary
        figures.append(["training", f"{s.get('steps', 0):,} steps, {s.get('tokens', 0):,} tokens", f"{run.label}: {s.get('status')}"])
        if s.get("val_loss") is not None and s.get("unigram_val_loss"):
            below = 1 - s["val_loss"] / s["unigram_val_loss"]
            figures.append(["validation loss", f"{s['val_loss']:.4f}",
                            f"unigram model {s['unigram_val_loss']:.4f}: {below:.1%} below"
                            + (f"; target {s['target_val_loss']:.4f}" if s.get("target_val_loss") else "")])
    for labels in _latest_last(report.evals).values():
        content = report.evals[labels[-1]]
        if "tasks" in content:
            figures.append([f"downstream tasks (step {content.get('step')})", _eval_scores(content), labels[-1]])

    page.heading("The run at a glance")
    page.table(["figure", "value", "where"], figures, numeric_from=3)

    if report.stages:
        page.heading("Curation funnel")
        plot_funnel(report, out / "funnel.png")
        page.image("funnel.png", "funnel: rows kept and dropped by reason per stage")
        per_token = report.bytes_per_token
        header = ["stage", "rows in", "kept", "dropped", "rows out", "bytes in", "bytes out", "tokens out"]
        rows, classes = [], []
        for stage in report.stages:
            st = stage.stats
            tokens = st["out"].get("tokens")
            token_text = f"{tokens:,}" if tokens else (f"≈{_human(st['out']['bytes'] / per_token)}" if per_token else "-")
            rows.append([f"{stage.label} ({stage.name})", f"{st['in']['rows']:,}", f"{st['kept']['rows']:,}",
                         f"{stage.dropped:,}", f"{st['out']['rows']:,}", _mb(st["in"]["bytes"]),
                         _mb(st["out"]["bytes"]), token_text])
            classes.append("total")
            for reason, n in st["dropped"].items():
                if n:
                    share = f"{n / st['in']['rows']:.1%}" if st["in"]["rows"] else "-"
                    rows.append([f"− {reason}", "", "", f"{n:,} ({share})", "", "", "", ""])
                    classes.append("reason")
            unused = [reason for reason, n in st["dropped"].items() if not n]
            if unused:
                rows.append([f"− {', '.join(unused)}", "", "", "0 each", "", "", "", ""])
                classes.append("reason")
        page.table(header, rows, classes=classes)
        if per_token:
            page.para(f"Tokens marked ≈ are estimated at the blend's {per_token:.2f} bytes of text per token; "
                      "the blend's own count is exact.")
        page.para("Bytes in: what the stage read (WARC records for extract, document text after it). Bytes out: "
                  "the text of the documents kept (the token files for the blend). Drop reasons are listed in the "
                  "order each stage applies them: a row is counted under the first that applies.")
        for stage in report.stages:
            if stage.stats.get("extra"):
                page.details(f"{stage.label} ({stage.name}): details from stats.json", _extra_lines(stage.stats["extra"]))

    drawn: set[str] = set()  # a column is drawn at the stage that added it, not again where it is carried on
    for stage in report.stages:
        kept, dropped = ([], []) if "quality_score" in drawn else scored_values(stage, "quality_score")
        if kept or dropped:
            drawn.add("quality_score")
            name = f"quality-{_anchor(stage.label)}.png"
            page.heading(f"Quality scores: {stage.label}")
            plot_scores(kept, dropped, stage, out / name)
            page.image(name, f"quality score histogram of {stage.label}")
            if not dropped:
                page.para("Dropped documents were not kept by this run (--keep-dropped): only kept ones are shown.")
        sizes = Counter() if "cluster_id" in drawn else cluster_sizes(stage)
        if sizes:
            drawn.add("cluster_id")
            name = f"clusters-{_anchor(stage.label)}.png"
            page.heading(f"Duplicate clusters: {stage.label}")
            plot_clusters(sizes, stage, out / name)
            page.image(name, f"duplicate cluster sizes of {stage.label}")
            page.para(f"{sum(sizes.values()):,} clusters of near-duplicates hold {sum(k * v for k, v in sizes.items()):,} "
                      "documents.")

    if report.manifest:
        trained = run.summary.get("tokens") if run and run.summary else None
        page.heading("Blend (the paper's Table 1 for this run)")
        rows = blend_rows(report.manifest, trained)
        page.table(["source", "documents", "tokens", "weight", "epochs" + (" (in this run)" if trained else "")],
                   [[r["source"], f"{r['documents']:,}", f"{r['tokens']:,}", f"{r['weight']:.2%}",
                     f"{r['epochs']:.2f}" if r["epochs"] is not None else "-"] for r in rows])
        page.para(f"From {report.manifest_label}/{MANIFEST}: tokens are the training split's; epochs = weight x "
                  f"training tokens / source tokens" + (f" for the {trained:,} tokens trained." if trained else "."))

    for r in report.runs:
        page.heading(f"Training: {r.label}")
        loss_png = r.folder / "loss.png"
        if loss_png.is_file():
            name = f"loss-{_anchor(r.label)}.png"
            shutil.copyfile(loss_png, out / name)
            page.image(name, "training and validation loss against tokens")
        cfg = r.config
        model, parallel, batch, opt = (cfg.get(k, {}) for k in ("model", "parallel", "batch", "optimizer"))
        world = ""
        if parallel:
            world = f"TP {parallel.get('tensor')} x PP {parallel.get('pipeline')}"
        rows = [
            ["model", f"{model.get('num_layers')} layers, hidden {model.get('hidden_size')}, "
                      f"{model.get('num_attention_heads')} heads, seq {model.get('seq_length')}, vocab {model.get('vocab_size')}"],
            ["layout", world + (f", ZeRO-{parallel.get('zero_stage')}" if parallel else "")],
            ["batch", f"global {batch.get('global_batch_size')} (ramp from {batch.get('rampup_start')}), "
                      f"micro {batch.get('micro_batch_size')}"],
            ["optimizer", f"Adam lr {opt.get('lr')}, warmup {opt.get('warmup_tokens'):,} tokens, cosine to "
                          f"{opt.get('decay_tokens'):,}" if opt else "-"],
        ]
        if r.train:
            step_s = sorted(float(x["step_s"]) for x in r.train if x.get("step_s"))
            rate = sorted(float(x["tokens_per_s"]) for x in r.train if x.get("tokens_per_s"))
            rows.append(["speed", f"median {step_s[len(step_s) // 2]:.2f} s/step, {rate[len(rate) // 2]:,.0f} tokens/s"])
        for key in ("status", "steps", "tokens", "val_loss", "unigram_val_loss", "target_val_loss"):
            if r.summary.get(key) is not None:
                value = r.summary[key]
                rows.append([key, f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)])
        page.table(["setting", "value"], rows, numeric_from=2)
        if r.valid:
            page.details("validation passes", [f"step {v['step']}: {float(v['val_loss']):.4f} after {int(v['tokens']):,} tokens"
                                               for v in r.valid])

    for folder, labels in _latest_last(report.evals).items():
        label, content = labels[-1], report.evals[labels[-1]]
        page.heading(f"Downstream tasks: {label}")
        if "table" in content:
            header = content["table"]["header"]
            skipped = {name: max(m.get("skipped_too_long", 0) for m in task["by_shots"].values())
                       for name, task in content.get("tasks", {}).items()}
            page.para(f"Step {content.get('step')}, {content.get('tokens') or 0:,} tokens; accuracy in %"
                      + (f", first {content['limit']} items of each task" if content.get("limit") else "")
                      + "".join(f"; {name}: {n} item(s) skipped, a choice longer than the model's context"
                                for name, n in skipped.items() if n)
                      + (". Clean: the items the decontamination stage did not find in the training data"
                         if "Clean items" in header else "") + ".")
            page.table(header, content["table"]["rows"], numeric_from=2)
        else:
            page.table(["task / metric", "value"], [list(row) for row in _eval_rows(content)])
        if len(labels) > 1:  # a run scored every N steps: the earlier checkpoints in one line each
            page.details(f"earlier evaluations in {folder}",
                         [f"step {report.evals[x].get('step')}: {_eval_scores(report.evals[x])}" for x in labels[:-1]])

    title = f"Run report: {report.roots[0].resolve().name}"
    nav = " ".join(f"<a href=\"#{_anchor(h)}\">{html.escape(h)}</a>" for h in _headings(page))
    document = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
                f"<p class=\"note\">Built by <code>python -m blending report</code> from the files under "
                f"{', '.join(f'<code>{html.escape(str(r))}</code>' for r in report.roots)}.</p>\n<nav>{nav}</nav>\n"
                + "\n".join(page.html) + "\n</body></html>\n")
    (out / "index.html").write_text(document)
    (out / "report.md").write_text(f"# {title}\n\n" + "\n".join(page.md))
    return out / "index.html"


def _headings(page: Page) -> list[str]:
    return [line.split(" ", 1)[1].strip() for line in page.md if line.startswith("## ")]


def _latest_last(evals: dict[str, dict]) -> dict[str, list[str]]:
    """Labels of the evaluations grouped by folder, each group by step."""
    groups: dict[str, list[str]] = {}
    for label in evals:
        groups.setdefault(label.rsplit("/", 1)[0] if "/" in label else ".", []).append(label)
    return {folder: sorted(labels, key=lambda x: (evals[x].get("step") or 0, x)) for folder, labels in groups.items()}


def _eval_scores(content: dict) -> str:
    """Each task's main metric at its first shot count, e.g. "piqa acc 56.3%, hellaswag acc_norm 24.8%"."""
    scores = []
    for name, task in content.get("tasks", {}).items():
        by_shots = task.get("by_shots") or {}
        first = by_shots[min(by_shots, key=int)] if by_shots else {}
        metric = task.get("metric", "acc")
        value = first.get(metric)
        scores.append(f"{name} {metric} {'-' if value is None else f'{100 * value:.1f}%'}")
    return ", ".join(scores)


def _eval_rows(content: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in content.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _eval_rows(value, name + " / ")
        elif isinstance(value, float):
            rows.append((name, f"{value:.4f}"))
        elif isinstance(value, int | str | bool):
            rows.append((name, str(value)))
    return rows


def main(roots: str | list[str], out: str | None = None) -> int:
    roots = [roots] if isinstance(roots, str) else list(roots)
    out = out or str(Path(roots[0]) / "report")
    report = collect(roots, out)
    if not report.stages and not report.runs:
        print(f"nothing to report under {', '.join(roots)}: no stage folder (stats.json + _SUCCESS) and no "
              "training run")
        return 1
    index = write_report(report, out)
    print(f"report: {index} ({len(report.stages)} stages, {len(report.runs)} training run(s), "
          f"{len(report.evals)} evaluation(s)); also {Path(out) / 'report.md'}")
    return 0
