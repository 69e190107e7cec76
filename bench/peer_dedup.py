"""Dedup against datatrove: its four-step MinHash (FineWeb's settings) and our dedup stage on the same documents

Documents: sample-crawl pages with known duplicate groups, built as bench/dedup_scale.py builds them
(material ../shared/data): originals, recrawls of the same URL, copies on other sites with 0 to 10% of
their words edited, short pages; `--documents` of them in eight JSONL files.

  - datatrove 0.10.1 (FineWeb's configuration): JsonlReader -> MinhashDedupSignature (14 buckets x 8
    hashes, 64-bit xxhash of word 5-grams of its simplified text, spaCy's English word tokenizer) ->
    MinhashDedupBuckets -> MinhashDedupCluster -> MinhashDedupFilter -> JsonlWriter, no verification;
    a LocalPipelineExecutor per step with 2 workers (fork), in a process of its own; CPU seconds of that
    process and its workers (reaped), imports and interpreter start excluded.
  - ours: the dedup stage (exact URL and text dedup, MinHash LSH 20 x 13, Jaccard >= 0.8 verification,
    connected components, Parquet output with --keep-dropped) through dataprep.pipeline.run on a
    warm local[2] Spark session, on the same documents ingested once into a stage folder (not timed);
    CPU seconds of every process of the bench's tree: driver, JVM, Python workers.
Runs alternate, `--repeats` of each (after one warm-up run of ours), medians quoted.
ratio = datatrove CPU seconds / ours.

Quality against the known groups: a dropped document is a true positive when a document of its known
group (another copy of the same original page) is kept; precision = true positives / dropped; recall =
true positives / (documents of the groups - number of groups), the most that could be dropped.
Copies with many edits are in the groups but under any 0.8 threshold: recall below 1 is expected on
both sides. Identical texts are copies too: pages of the same text join one group (the builder reuses its
material). The verification's share: CPU seconds of the stage's verification step (candidate pairs
joined with their texts, exact Jaccard of their shingle sets) run alone on the stage's own frames after
each run of ours, over the stage's CPU seconds (medians). The last line printed is one JSON object.

    python bench/peer_dedup.py [--documents 8000] [--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _cputime import tree_cpu_seconds  # noqa: E402
from _shared import data_folder  # noqa: E402
from dedup_scale import FILES, documents, read_rows  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from blending.spark_session import get_spark  # noqa: E402
from dataprep.config import DataprepConfig  # noqa: E402
from dataprep.dedup import frames  # noqa: E402
from dataprep.framework.spark_folders import read_input_folders  # noqa: E402
from dataprep.framework.spark_rows import Tallies  # noqa: E402
from dataprep.pipeline import run  # noqa: E402

WORKERS = 2
SKIPPED = 77
README_FIGURES = ("ratio", "precision", "recall", "datatrove_precision", "datatrove_recall", "verification_cpu_share")


def write_jsonl(rows: list[dict], folder: Path) -> dict[str, int]:
    """Eight JSONL files (id = the page's number); and each line's origin -> page, as ingest names origins."""
    folder.mkdir(parents=True)
    per_file = -(-len(rows) // FILES)
    page_of = {}
    for f in range(FILES):
        chunk = rows[f * per_file : (f + 1) * per_file]
        name = f"pages-{f:02d}.jsonl"
        lines = [json.dumps({"id": str(r["page"]), "text": r["text"], "url": r["url"]}) + "\n" for r in chunk]
        (folder / name).write_text("".join(lines), encoding="utf-8")
        page_of.update({f"{name}:{i}": r["page"] for i, r in enumerate(chunk)})
    return page_of


def datatrove_run(jsonl: Path, work: Path) -> None:
    """datatrove's MinHash pipeline (its minhash_deduplication example with FineWeb's settings); prints
    the CPU seconds of this process and its reaped workers, measured from after the imports."""
    import xxhash
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashes import xxhash as datatrove_xxhash
    from datatrove.utils.hashing import HashConfig

    # datatrove hands xxhash a str, which xxhash 4 (requirements/dataprep.txt) refuses; xxhash 3 hashed
    # its UTF-8 bytes, as this does.
    datatrove_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode("utf-8") if isinstance(data, str) else data)
    config = MinhashConfig(hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5)
    tasks = FILES

    def reader():
        return JsonlReader(str(jsonl), glob_pattern="*.jsonl", compression=None)

    def executor(pipeline, steps_tasks, name):
        return LocalPipelineExecutor(pipeline=pipeline, tasks=steps_tasks, workers=min(WORKERS, steps_tasks),
                                     logging_dir=str(work / "logs" / name), start_method="fork")

    before = os.times()
    executor([reader(), MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)],
             tasks, "signatures").run()
    executor([MinhashDedupBuckets(input_folder=str(work / "signatures"), output_folder=str(work / "buckets"),
                                  config=config)], config.num_buckets, "buckets").run()
    executor([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"),
                                  config=config)], 1, "clusters").run()
    executor([reader(), MinhashDedupFilter(input_folder=str(work / "remove_ids"),
                                           exclusion_writer=JsonlWriter(str(work / "removed"), compression=None)),
              JsonlWriter(str(work / "output"), compression=None)], tasks, "filter").run()
    after = os.times()
    cpu = sum(after[:4]) - sum(before[:4])  # user, system, children's user and system
    print(json.dumps({"cpu_s": cpu}))


def measure_datatrove(jsonl: Path, work: Path) -> tuple[float, float, set[int], int]:
    """(CPU s, wall s, pages removed, documents kept) of one datatrove run in a process of its own."""
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--datatrove-run", str(jsonl), str(work)],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"datatrove failed:\n{done.stderr[-3000:]}")
    cpu = json.loads(done.stdout.strip().splitlines()[-1])["cpu_s"]
    removed = set()
    for path in (work / "removed").glob("*.jsonl"):
        removed |= {int(json.loads(line)["id"]) for line in path.read_text(encoding="utf-8").splitlines()}
    kept = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (work / "output").glob("*.jsonl"))
    return cpu, wall, removed, kept


def known_groups(rows: list[dict], original: dict[int, int]) -> dict[int, int]:
    """page -> its known group: the builder's groups of copies (an original page and its copies), joined
    with every other page of the same text (the builder reuses material: such pages are copies it did
    not plan)."""
    parent = {r["page"]: original.get(r["page"], r["page"]) for r in rows}
    parent.update({g: g for g in set(parent.values()) - set(parent)})

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_of_text: dict[str, int] = {}
    for r in rows:
        other = first_of_text.setdefault(r["text"], r["page"])
        parent[find(r["page"])] = find(other)
    return {r["page"]: find(r["page"]) for r in rows}


def quality(dropped: set[int], group: dict[int, int]) -> dict:
    """Precision and recall of a set of dropped pages against the known groups (module docstring)."""
    sizes: dict[int, int] = {}
    kept_in: dict[int, int] = {}
    for page, g in group.items():
        sizes[g] = sizes.get(g, 0) + 1
        if page not in dropped:
            kept_in[g] = kept_in.get(g, 0) + 1
    true = sum(1 for p in dropped if sizes[group[p]] > 1 and kept_in.get(group[p], 0) > 0)
    possible = sum(n - 1 for n in sizes.values() if n > 1)
    return {"dropped": len(dropped), "true_positives": true, "possible": possible,
            "precision": round(true / len(dropped), 4) if dropped else 1.0,
            "recall": round(true / possible, 4) if possible else 1.0}


def verification_cpu(spark, docs: Path, config: DataprepConfig) -> float:
    """CPU seconds (every process) of the stage's verification step alone: the candidate pairs joined
    with their texts and checked by the exact Jaccard similarity of their shingle sets, on the stage's
    own frames (keys and candidates made first, not counted)."""
    session = spark.newSession()
    session.conf.set("spark.sql.shuffle.partitions", str(2 * WORKERS))
    documents = read_input_folders(session, [str(docs)]).documents.select("doc_id", "source", "url", "origin", "text")
    dedup = config.dedup
    keys = frames.document_keys(documents, dedup, dedup.priority, earlier=False)
    keys = frames.exact_duplicates(keys.localCheckpoint()).localCheckpoint()
    pairs = frames.candidate_pairs(keys.where(F.col("exact_reason").isNull()), dedup).localCheckpoint()
    started = tree_cpu_seconds()
    frames.verified_pairs(pairs, documents.select("doc_id", "text"), dedup, Tallies(session)).localCheckpoint()
    return tree_cpu_seconds() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=8_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--material", help="samplecrawl material (default: the shared data folder, bench/_shared.py)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--datatrove-run", nargs=2, metavar=("JSONL", "WORK"), help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.documents, args.repeats = 400, 1
    missing = [name for name in ("datatrove", "spacy", "orjson") if find_spec(name) is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (pip install -r requirements-bench.txt)", file=sys.stderr)
        return SKIPPED  # cannot run here: make bench reports it as skipped
    if args.datatrove_run:
        datatrove_run(Path(args.datatrove_run[0]), Path(args.datatrove_run[1]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="peer-dedup-"))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        rows, original = documents(Path(args.material or data_folder(args.smoke)), args.documents, args.seed)
        rows = rows[: args.documents]
        pages = [r["page"] for r in rows]
        page_of = write_jsonl(rows, work / "jsonl")
        print(f"{len(rows):,} documents, {sum(len(r['text']) for r in rows) / len(rows):,.0f} characters each on "
              f"average, {sum(1 for p in pages if p in original):,} of them copies", file=sys.stderr)

        config = DataprepConfig()
        quiet = {"log": lambda *_: None}
        spark = get_spark(f"local[{WORKERS}]", app_name="bench-peer-dedup", conf={"spark.ui.showConsoleProgress": "false"})
        run("ingest", spark, [str(work / "jsonl" / "*.jsonl")], str(work / "docs"), config, format="jsonl",
            source="sample-crawl", **quiet)
        run("dedup", spark, [str(work / "docs")], str(work / "warmup"), config, keep_dropped=True, **quiet)

        ours_cpu, ours_wall, theirs_cpu, theirs_wall, verify_cpu = [], [], [], [], []
        for r in range(args.repeats):
            cpu, wall, removed, theirs_kept = measure_datatrove(work / "jsonl", work / "datatrove")
            theirs_cpu.append(cpu)
            theirs_wall.append(wall)

            out = work / "ours"
            shutil.rmtree(out, ignore_errors=True)
            started, cpu = time.perf_counter(), tree_cpu_seconds()
            stats = run("dedup", spark, [str(work / "docs")], str(out), config, keep_dropped=True, **quiet)
            ours_wall.append(time.perf_counter() - started)
            ours_cpu.append(tree_cpu_seconds() - cpu)
            verify_cpu.append(verification_cpu(spark, work / "docs", config))
            print(f"run {r + 1}: datatrove {theirs_cpu[-1]:.1f} CPU s ({theirs_wall[-1]:.1f} s), "
                  f"ours {ours_cpu[-1]:.1f} CPU s ({ours_wall[-1]:.1f} s, verification {verify_cpu[-1]:.1f} CPU s)",
                  file=sys.stderr)
        if len(removed) + theirs_kept != len(rows):
            raise RuntimeError(f"datatrove wrote {theirs_kept} documents and removed {len(removed)} of {len(rows)}")
        if not removed:
            raise RuntimeError("datatrove removed nothing: not a baseline")

        ours_rows = read_rows(out)
        ours_dropped = {page_of[r["origin"]] for r in ours_rows if r["drop_reason"] is not None}
        group = known_groups(rows, original)
        ours_q, theirs_q = quality(ours_dropped, group), quality(removed, group)
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(rows)
    ours_med, theirs_med = statistics.median(ours_cpu), statistics.median(theirs_cpu)
    figures = {
        "ratio": round(theirs_med / ours_med, 3),
        "documents": n,
        "ours_cpu_s": [round(c, 1) for c in ours_cpu],
        "datatrove_cpu_s": [round(c, 1) for c in theirs_cpu],
        "ours_docs_per_cpu_s": round(n / ours_med, 1),
        "datatrove_docs_per_cpu_s": round(n / theirs_med, 1),
        "ours_wall_s": round(statistics.median(ours_wall), 1),
        "datatrove_wall_s": round(statistics.median(theirs_wall), 1),
        "verification_cpu_s": round(statistics.median(verify_cpu), 2),
        "verification_cpu_share": round(statistics.median(verify_cpu) / ours_med, 4),
        "candidate_pairs": stats.extra["candidate_pairs"],
        "verified_pairs": stats.extra["verified_pairs"],
        "precision": ours_q["precision"],
        "recall": ours_q["recall"],
        "dropped": ours_q["dropped"],
        "datatrove_precision": theirs_q["precision"],
        "datatrove_recall": theirs_q["recall"],
        "datatrove_dropped": theirs_q["dropped"],
        "droppable": ours_q["possible"],
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
