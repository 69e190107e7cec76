"""The run's report: what every stage did, what the blend holds, how training went.

    python -m reporting report out/demo out/documents --out out/demo/report   # index.html, report.md, PNGs

It reads only what the runs wrote, so a stage added to the pipeline shows up without a change here:
- stage folders (stats.json + _SUCCESS) under the roots, in pipeline order by their lineage (each
  _SUCCESS names what it read: blending.stages);
- the blend: the first manifest.json found (its sources, weights and token counts);
- training runs (metrics.csv, valid.csv, summary.json, config.json, loss.png) and eval.json files;
- ablations (trainer.ablate's ablation.json and ablation.png; their shards and runs are not the run's);
- cost estimates (dataprep estimate's estimate.json; its sample's stage folders are not the run's), beside
  the run's cost.json (dataprep run --measure-cost).
Plots: the funnel, quality scores and duplicate-cluster sizes when a stage wrote those columns, the
loss curves. The folder is self-contained (index.html opens from disk, no server, no script). The PNGs
a report writes are listed in report-files.txt, and only those are deleted when it is written again.
An --out on object storage (s3://...) gets the same files, written locally and uploaded, the pages last.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
from pathlib import Path

from blending.stage_folder import InputError, is_listed, resolve, upload_file
from reporting.clusters import cluster_sizes, plot_clusters
from reporting.collect import MANIFEST, Report, Run, collect
from reporting.estimate import add_estimate
from reporting.figures import reason_colors
from reporting.funnel import funnel_table, plot_funnel, reasons_of
from reporting.page import Page, anchor
from reporting.scores import plot_histogram, score_histograms
from reporting.units import mb

WRITTEN = "report-files.txt"  # the PNGs the last report wrote, one name a line
PLOT_PATTERNS = ("funnel.png", "quality-*.png", "clusters-*.png", "loss-*.png", "ablation-*.png")  # a report from before the list


class ReportFolder:
    """The report's folder: its PNGs from the last report are deleted (a plot whose data is gone must not
    stay behind), anything else in it is left alone; the new ones are recorded as they are written."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.written: list[str] = []
        listed = self.out / WRITTEN
        if listed.is_file():
            names = [n.strip() for n in listed.read_text().splitlines()]
            old = [self.out / n for n in names if n.endswith(".png") and Path(n).name == n]
        else:
            old = [p for pattern in PLOT_PATTERNS for p in self.out.glob(pattern)]
        for path in old:
            path.unlink(missing_ok=True)

    def png(self, name: str) -> Path:
        self.written.append(name)
        self.record()
        return self.out / name

    def record(self) -> None:
        (self.out / WRITTEN).write_text("".join(f"{n}\n" for n in self.written))


# --- the sections ----------------------------------------------------------------------------------


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


def glance_rows(report: Report) -> list[list[str]]:
    """A line per figure that sums the run up: input, documents curated, tokens, training, downstream."""
    rows = []
    run = report.runs[-1] if report.runs else None
    first = report.stages[0] if report.stages else None
    last_docs = next((s for s in reversed(report.stages) if s.name != "blend"), None)
    if first:
        rows.append(["input rows", f"{first.stats['in']['rows']:,}", f"{first.label} ({first.name})"])
    if last_docs:
        rows.append(["documents after curation", f"{last_docs.stats['out']['rows']:,}",
                     f"{last_docs.label}, {mb(last_docs.stats['out']['bytes'])} of text"])
    if report.manifest:
        blend = blend_rows(report.manifest, None)
        rows.append(["tokens in the blend", f"{sum(r['tokens'] for r in blend):,} train + "
                     f"{sum(r['valid_tokens'] for r in blend):,} valid",
                     f"{len(blend)} source(s), vocabulary {report.manifest['tokenizer']['vocab_size']:,}"])
    if run and run.summary:
        s = run.summary
        rows.append(["training", f"{s.get('steps', 0):,} steps, {s.get('tokens', 0):,} tokens", f"{run.label}: {s.get('status')}"])
        if s.get("val_loss") is not None and s.get("unigram_val_loss"):
            below = 1 - s["val_loss"] / s["unigram_val_loss"]
            rows.append(["validation loss", f"{s['val_loss']:.4f}",
                         f"unigram model {s['unigram_val_loss']:.4f}: {below:.1%} below"
                         + (f"; target {s['target_val_loss']:.4f}" if s.get("target_val_loss") else "")])
    for labels in latest_last(report.evals).values():
        content = report.evals[labels[-1]]
        if "tasks" in content:
            rows.append([f"downstream tasks (step {content.get('step')})", eval_scores(content), labels[-1]])
    return rows


def add_glance(page: Page, report: Report) -> None:
    page.heading("The run at a glance")
    page.table(["figure", "value", "where"], glance_rows(report), numeric_from=3)


def add_funnel(page: Page, report: Report, folder: ReportFolder) -> None:
    if not report.stages:
        return
    page.heading("Curation funnel")
    plot_funnel(report.stages, folder.png("funnel.png"))
    page.image("funnel.png", "funnel: rows kept and dropped by reason per stage")
    table = funnel_table(report.stages)
    page.table(table.header, table.rows, classes=table.classes)
    per_token = report.bytes_per_token
    if per_token:
        page.para(f"Tokens marked ≈ are estimated at the blend's {per_token:.2f} bytes of text per token; "
                  "the blend's own count is exact.")
    page.para("Bytes in: what the stage read (WARC records for extract, document text after it). Bytes out: "
              "the text of the documents kept (the token files for the blend). Drop reasons are listed in the "
              "order each stage applies them: a row is counted under the first that applies.")
    for stage in report.stages:
        if stage.stats.get("extra"):
            page.details(f"{stage.label} ({stage.name}): details from stats.json", extra_lines(stage.stats["extra"]))


def add_scores_and_clusters(page: Page, report: Report, folder: ReportFolder) -> None:
    """Quality scores and duplicate clusters, each drawn at the stage that added the column, not again
    where a later stage carries it on."""
    colors = reason_colors(reasons_of(report.stages))  # the funnel's colours
    drawn: set[str] = set()
    for stage in report.stages:
        if "quality_score" not in drawn:
            for h in score_histograms(stage.found, ["quality_score"], bins=40, value_range=(0.0, 1.0), label=stage.label):
                drawn.add("quality_score")
                name = f"quality-{anchor(stage.label)}.png"
                page.heading(f"Quality scores: {stage.label}")
                plot_histogram(h, folder.png(name), title=f"Quality scores ({stage.label})", log=True,
                               xlabel="quality_score (classifier's probability of curated prose)", figsize=(8, 3.8),
                               colors=colors)
                # log scale: web text a good classifier keeps piles up near 1, and the few dropped must stay visible
                page.image(name, f"quality score histogram of {stage.label}")
                if not h.dropped:
                    page.para("Dropped documents were not kept by this run (--keep-dropped): only kept ones are shown.")
        sizes = cluster_sizes(stage.found) if "cluster_id" not in drawn else None
        if sizes:
            drawn.add("cluster_id")
            name = f"clusters-{anchor(stage.label)}.png"
            page.heading(f"Duplicate clusters: {stage.label}")
            plot_clusters(sizes, stage.label, folder.png(name))
            page.image(name, f"duplicate cluster sizes of {stage.label}")
            page.para(f"{sum(sizes.values()):,} clusters of near-duplicates hold {sum(k * v for k, v in sizes.items()):,} "
                      "documents.")


def add_blend(page: Page, report: Report) -> None:
    if not report.manifest:
        return
    run = report.runs[-1] if report.runs else None
    trained = run.summary.get("tokens") if run and run.summary else None
    page.heading("Blend (the paper's Table 1 for this run)")
    rows = blend_rows(report.manifest, trained)
    page.table(["source", "documents", "tokens", "weight", "epochs" + (" (in this run)" if trained else "")],
               [[r["source"], f"{r['documents']:,}", f"{r['tokens']:,}", f"{r['weight']:.2%}",
                 f"{r['epochs']:.2f}" if r["epochs"] is not None else "-"] for r in rows])
    page.para(f"From {report.manifest_label}/{MANIFEST}: tokens are the training split's; epochs = weight x "
              f"training tokens / source tokens" + (f" for the {trained:,} tokens trained." if trained else "."))


def run_rows(run: Run) -> list[list[str]]:
    """A training run's settings and results, from its config.json, metrics.csv and summary.json."""
    model, parallel, batch, opt = (run.config.get(k, {}) for k in ("model", "parallel", "batch", "optimizer"))
    world = f"TP {parallel.get('tensor')} x PP {parallel.get('pipeline')}" if parallel else ""
    rows = [
        ["model", f"{model.get('num_layers')} layers, hidden {model.get('hidden_size')}, "
                  f"{model.get('num_attention_heads')} heads, seq {model.get('seq_length')}, vocab {model.get('vocab_size')}"],
        ["layout", world + (f", ZeRO-{parallel.get('zero_stage')}" if parallel else "")],
        ["batch", f"global {batch.get('global_batch_size')} (ramp from {batch.get('rampup_start')}), "
                  f"micro {batch.get('micro_batch_size')}"],
        ["optimizer", f"Adam lr {opt.get('lr')}, warmup {opt.get('warmup_tokens'):,} tokens, cosine to "
                      f"{opt.get('decay_tokens'):,}" if opt else "-"],
    ]
    if run.train:
        step_s = sorted(float(x["step_s"]) for x in run.train if x.get("step_s"))
        rate = sorted(float(x["tokens_per_s"]) for x in run.train if x.get("tokens_per_s"))
        rows.append(["speed", f"median {step_s[len(step_s) // 2]:.2f} s/step, {rate[len(rate) // 2]:,.0f} tokens/s"])
    for key in ("status", "steps", "tokens", "val_loss", "unigram_val_loss", "target_val_loss"):
        if run.summary.get(key) is not None:
            value = run.summary[key]
            rows.append([key, f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)])
    return rows


def add_training(page: Page, report: Report, folder: ReportFolder) -> None:
    for run in report.runs:
        page.heading(f"Training: {run.label}")
        loss_png = run.folder / "loss.png"
        if loss_png.is_file():
            name = f"loss-{anchor(run.label)}.png"
            shutil.copyfile(loss_png, folder.png(name))
            page.image(name, "training and validation loss against tokens")
        page.table(["setting", "value"], run_rows(run), numeric_from=2)
        if run.valid:
            page.details("validation passes", [f"step {v['step']}: {float(v['val_loss']):.4f} after {int(v['tokens']):,} tokens"
                                               for v in run.valid])


def add_downstream(page: Page, report: Report) -> None:
    for group, labels in latest_last(report.evals).items():
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
            page.table(["task / metric", "value"], [list(row) for row in eval_rows(content)])
        if len(labels) > 1:  # a run scored every N steps: the earlier checkpoints in one line each
            page.details(f"earlier evaluations in {group}",
                         [f"step {report.evals[x].get('step')}: {eval_scores(report.evals[x])}" for x in labels[:-1]])


def add_ablations(page: Page, report: Report, folder: ReportFolder) -> None:
    """trainer.ablate's table and plot: the same model trained on each variant of the data."""
    for label, (where, content) in report.ablations.items():
        if "table" not in content:
            continue
        page.heading(f"Ablation: {label}")
        budget = content.get("budget", {})
        texts = ", ".join(f"{t['name']} ({t['source']})" for t in content.get("heldout", []))
        page.para(f"The {content.get('preset')} model trained on {budget.get('tokens', 0):,} tokens of each variant "
                  f"({budget.get('rule')}), seeds {', '.join(map(str, content.get('seeds', [])))}: mean ± "
                  f"{content.get('spread')}. Held-out loss: nats per token on text that is no variant's output: "
                  f"{texts}. Own validation loss: on each variant's own validation split (not comparable across "
                  "variants). Downstream tasks: zero-shot accuracy in %"
                  + (f", first {content['eval_limit']} items of each task." if content.get("eval_limit") else "."))
        if (where / "ablation.png").is_file():
            name = f"ablation-{anchor(label)}.png"
            shutil.copyfile(where / "ablation.png", folder.png(name))
            page.image(name, "validation loss against tokens per variant, and the held-out loss of every model")
        page.table(content["table"]["header"], content["table"]["rows"])


def write_report(report: Report, out: str | Path) -> Path:
    folder = ReportFolder(out)
    page = Page()
    add_glance(page, report)
    add_funnel(page, report, folder)
    add_estimate(page, report)
    add_scores_and_clusters(page, report, folder)
    add_blend(page, report)
    add_training(page, report, folder)
    add_downstream(page, report)
    add_ablations(page, report, folder)
    folder.record()
    roots = ", ".join(f"<code>{html.escape(str(r))}</code>" for r in report.roots)
    return page.write(folder.out, f"Run report: {report.roots[0].resolve().name}",
                      f"Built by <code>python -m reporting report</code> from the files under {roots}.")


# --- formatting ------------------------------------------------------------------------------------


def extra_lines(extra: dict) -> list[str]:
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


def latest_last(evals: dict[str, dict]) -> dict[str, list[str]]:
    """Labels of the evaluations grouped by folder, each group by step."""
    groups: dict[str, list[str]] = {}
    for label in evals:
        groups.setdefault(label.rsplit("/", 1)[0] if "/" in label else ".", []).append(label)
    return {folder: sorted(labels, key=lambda x: (evals[x].get("step") or 0, x)) for folder, labels in groups.items()}


def eval_scores(content: dict) -> str:
    """Each task's main metric at its first shot count, e.g. "piqa acc 56.3%, hellaswag acc_norm 24.8%"."""
    scores = []
    for name, task in content.get("tasks", {}).items():
        by_shots = task.get("by_shots") or {}
        first = by_shots[min(by_shots, key=int)] if by_shots else {}
        metric = task.get("metric", "acc")
        value = first.get(metric)
        scores.append(f"{name} {metric} {'-' if value is None else f'{100 * value:.1f}%'}")
    return ", ".join(scores)


def eval_rows(content: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in content.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += eval_rows(value, name + " / ")
        elif isinstance(value, float):
            rows.append((name, f"{value:.4f}"))
        elif isinstance(value, int | str | bool):
            rows.append((name, str(value)))
    return rows


def main(roots: str | list[str], out: str | None = None) -> int:
    roots = [roots] if isinstance(roots, str) else list(roots)
    out = out or str(Path(roots[0]) / "report")
    if is_listed(out):  # object storage: written here, then uploaded
        with tempfile.TemporaryDirectory(prefix="report-") as staging:
            local = Path(staging) / "report"
            index = _write(roots, str(local))
            upload_report(local, out.rstrip("/"))
        print(f"report: {out.rstrip('/')}/{index.relative_to(local).as_posix()} (uploaded)")
        return 0
    _write(roots, out)
    return 0


def upload_report(local: Path, out: str) -> None:
    """The report's files copied under `out` by name (a browser follows its links as they are), the pages
    last, so a page never links to a figure that is not there yet."""
    fs, root = resolve(out)
    pages = {".html", ".md"}
    for path in sorted((p for p in local.rglob("*") if p.is_file()), key=lambda p: (p.suffix in pages, p.as_posix())):
        upload_file(path, f"{root}/{path.relative_to(local).as_posix()}", fs)


def _write(roots: list[str], out: str) -> Path:
    """The report of `roots` written into the local folder `out`; its index page."""
    report = collect(roots, out)
    if not report.stages and not report.runs and not report.ablations:
        raise InputError(f"nothing to report under {', '.join(roots)}: no stage folder (stats.json + _SUCCESS), "
                         "no training run and no ablation")
    index = write_report(report, out)
    print(f"report: {index} ({len(report.stages)} stages, {len(report.runs)} training run(s), "
          f"{len(report.evals)} evaluation(s), {len(report.ablations)} ablation(s)); also {Path(out) / 'report.md'}")
    return index
