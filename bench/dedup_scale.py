"""Dedup at scale and quality: the whole stage on 10k, 50k and 100k sample-crawl documents, and no-verification banding

The whole dedup stage on 10k, 50k and 100k ingested sample-crawl documents, and its quality on their
planted near-duplicate groups, against datatrove-style banding without verification.

Documents: the pages the sample-crawl builder plans (samplecrawl, material ../shared/data),
each page's content text as one JSONL line (URL included): originals, recrawls of the same URL, edited
copies on other sites (word edit rates 0, 1, 2, 5, 10%) and short pages, in the builder's proportions
for dedup work; the first N pages make the N-document set (copies follow their originals). Each set is
ingested once (not timed), then `python -m dataprep dedup` runs in its own process on local[2]:
  - CPU seconds of the whole process tree (driver, Spark JVM, Python workers), wall seconds, and the
    tree's peak resident memory (sum over its processes, sampled every 0.2 s);
  - per_doc_growth = (CPU per document from 50k to 100k) / (CPU per document from 10k to 50k), goal <= 1.3.
Quality on the largest set (dataprep.dedup.evaluate, the stage's own shingles): precision of the dropped,
recall of pairs over 0.9 and in 0.8-0.9 with the LSH curve's prediction, groups lost. The same documents
with datatrove's defaults (14 bands x 8 rows of the same signatures, no verification, one survivor per
connected component): how many documents it drops that are no duplicate (distinct documents lost).
The last line printed is one JSON object of the figures.

    python bench/dedup_scale.py [--sizes 10000,50000,100000] [--material ../shared/data] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from _shared import data_folder

from dataprep.dedup.evaluate import Document, evaluate
from dataprep.dedup.ranking import origin_parts
from samplecrawl import CrawlMix, SampleCrawlConfig, load_material
from samplecrawl.plan import build_plan
from samplecrawl.render import content_paragraphs

ROOT = Path(__file__).resolve().parents[1]
MIX = CrawlMix(clean=0.84, leaked=0.0, recrawl=0.03, near_duplicate=0.08, non_english=0.0, legacy_charset=0.0, short=0.05,
               javascript_notice=0.0, non_html=0.0, revisit=0.0)
FILES = 8
README_FIGURES = ("per_doc_growth", "precision", "recall", "recall_0.8_0.9", "lsh_curve_0.8_0.9", "groups_lost",
                  "no_verification_14x8_distinct_dropped")


def documents(material_dir: Path, pages: int, seed: int) -> tuple[list[dict], dict[int, int]]:
    """One JSONL row per page (text, url, page), in plan order; and each copy's original page."""
    material = load_material(material_dir)
    plan = build_plan(material, SampleCrawlConfig(mix=MIX), 3 * pages + FILES, FILES, seed)
    rows, original = [], {}
    for page in plan:
        if page.category == "truncated":
            continue
        text = "\n".join(content_paragraphs(page, material, seed)[0])
        rows.append({"text": text, "url": page.url, "page": page.index})
        if page.original is not None:
            original[page.index] = page.original
    return rows, original


def write_jsonl(rows: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True)
    per_file = -(-len(rows) // FILES)
    for f in range(FILES):
        chunk = rows[f * per_file : (f + 1) * per_file]
        (folder / f"pages-{f:02d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk), encoding="utf-8")


class TreeSampler:
    """Peak resident memory (sum over the process tree) and CPU seconds of every process seen."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                except psutil.NoSuchProcess:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            time.sleep(0.2)

    def finish(self) -> tuple[float, float]:
        self.stop.set()
        self.thread.join()
        return sum(self.cpu.values()), self.peak_rss / 2**20


def run_measured(args: list[str], env: dict) -> dict:
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampled_cpu, peak_mb = sampler.finish()
    after = os.times()
    reaped_cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return {"cpu_s": round(max(sampled_cpu, reaped_cpu), 1), "wall_s": round(wall, 1), "peak_rss_mb": round(peak_mb)}


def read_rows(folder: Path) -> list[dict]:
    files = sorted(folder.glob("part-*.parquet")) + sorted((folder / "dropped").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pylist()


def no_verification(rows: list[dict], bands: int = 14, rows_per_band: int = 8) -> dict[str, str | None]:
    """datatrove's default banding over the same signatures, every candidate pair a duplicate, one
    survivor per connected component (the best-ranked, as ours): doc_id -> duplicate_of."""
    parent = {r["doc_id"]: r["doc_id"] for r in rows}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for b in range(bands):
        buckets: dict[bytes, str] = {}
        for r in rows:
            if r["minhash"] is None or r["text"] is None:
                continue
            key = r["minhash"][4 * b * rows_per_band : 4 * (b + 1) * rows_per_band]
            if key == b"\xff" * len(key):
                continue
            first = buckets.setdefault(key, r["doc_id"])
            parent[find(r["doc_id"])] = find(first)
    rank = {r["doc_id"]: (*origin_parts(r["origin"]), r["doc_id"]) for r in rows}
    best: dict[str, str] = {}
    for doc in parent:
        root = find(doc)
        if root not in best or rank[doc] < rank[best[root]]:
            best[root] = doc
    return {doc: (best[find(doc)] if best[find(doc)] != doc else None) for doc in parent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--material", help="samplecrawl material (default: the shared data folder, bench/_shared.py)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--keep", help="keep the work folder here")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.sizes = "300"  # each size starts two JVMs; per_doc_growth, which needs three sizes, is null
    sizes = [int(s) for s in args.sizes.split(",")]

    work = Path(args.keep or tempfile.mkdtemp(prefix="dedup-scale-"))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_LEVEL": "ERROR"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    python = [sys.executable, "-m", "dataprep"]
    measured = work / "runs.json"  # with --keep, a rerun measures only the sizes not measured yet
    runs = {int(k): v for k, v in json.loads(measured.read_text()).items()} if measured.exists() else {}
    try:
        start = time.perf_counter()
        rows, original = documents(Path(args.material or data_folder(args.smoke)), max(sizes), args.seed)
        print(f"{len(rows)} documents planned in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        for n in sizes:
            if n in runs:
                continue
            shutil.rmtree(work / f"jsonl-{n}", ignore_errors=True)
            shutil.rmtree(work / f"docs-{n}", ignore_errors=True)
            shutil.rmtree(work / f"dedup-{n}", ignore_errors=True)
            write_jsonl(rows[:n], work / f"jsonl-{n}")
            subprocess.run([*python, "ingest", "--input", str(work / f"jsonl-{n}" / "*.jsonl"), "--format", "jsonl",
                            "--source", "sample-crawl", "--output", str(work / f"docs-{n}"), "--master", args.master],
                           env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs[n] = run_measured([*python, "dedup", "--input", str(work / f"docs-{n}"), "--output",
                                    str(work / f"dedup-{n}"), "--keep-dropped", "--master", args.master], env)
            stats = json.loads((work / f"dedup-{n}" / "stats.json").read_text())
            runs[n].update(dropped=stats["dropped"], candidate_pairs=stats["extra"]["candidate_pairs"],
                           verified_pairs=stats["extra"]["verified_pairs"], clusters=stats["extra"]["clusters"])
            print(f"{n:>7} documents: {runs[n]}", file=sys.stderr)
            measured.write_text(json.dumps(runs))

        largest = max(sizes)
        out = read_rows(work / f"dedup-{largest}")
        page_of = {}
        for f in range(FILES):
            for line, row in enumerate((work / f"jsonl-{largest}" / f"pages-{f:02d}.jsonl").read_text().splitlines()):
                page_of[f"pages-{f:02d}.jsonl:{line}"] = json.loads(row)["page"]
        copied = set(original.values())
        groups = {o: original.get(p, p) for o, p in page_of.items() if p in original or p in copied}
        ours = evaluate([Document(r["doc_id"], r["origin"], r["text"], r["drop_reason"], r["duplicate_of"]) for r in out],
                        groups)
        kept_by_exact = [r for r in out if r["drop_reason"] not in ("duplicate_url", "duplicate_text")]
        theirs_dup = no_verification(kept_by_exact)
        theirs_dup.update({r["doc_id"]: r["duplicate_of"] for r in out if r["doc_id"] not in theirs_dup})
        theirs = evaluate([Document(r["doc_id"], r["origin"], r["text"], "duplicate" if theirs_dup[r["doc_id"]] else None,
                                    theirs_dup[r["doc_id"]]) for r in out], groups)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    small, mid, big = sorted(sizes)[0], sorted(sizes)[len(sizes) // 2], sorted(sizes)[-1]
    growth = None  # the cost per document from the middle size to the largest over that from the smallest to the middle
    if small < mid < big:
        growth = round(((runs[big]["cpu_s"] - runs[mid]["cpu_s"]) / (big - mid))
                       / ((runs[mid]["cpu_s"] - runs[small]["cpu_s"]) / (mid - small)), 3)
    summary = ours.summary()
    figures = {
        "sizes": sizes,
        "cpu_s": [runs[n]["cpu_s"] for n in sizes],
        "wall_s": [runs[n]["wall_s"] for n in sizes],
        "peak_rss_mb": [runs[n]["peak_rss_mb"] for n in sizes],
        "per_doc_growth": growth,
        "candidate_pairs": [runs[n]["candidate_pairs"] for n in sizes],
        "verified_pairs": [runs[n]["verified_pairs"] for n in sizes],
        "precision": summary["precision"],
        "recall": summary["recall_over_high"],
        "recall_0.8_0.9": summary["recall_threshold_to_high"],
        "lsh_curve_0.8_0.9": summary["lsh_curve_threshold_to_high"],
        "lsh_curve_sd_0.8_0.9": summary["lsh_curve_sd_threshold_to_high"],
        "pairs_over_0.9": summary["pairs_over_high"],
        "pairs_0.8_0.9": summary["pairs_threshold_to_high"],
        "groups_lost": summary["groups_lost"],
        "dropped": summary["dropped"],
        "distinct_dropped": len(ours.wrongly_dropped),
        "no_verification_14x8_dropped": theirs.dropped,
        "no_verification_14x8_distinct_dropped": len(theirs.wrongly_dropped),
        "no_verification_14x8_precision": round(theirs.precision, 4),
        "no_verification_14x8_groups_lost": theirs.groups_lost,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
