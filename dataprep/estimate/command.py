"""`python -m dataprep estimate`: run the pipeline on a few files of a listing and project its cost.

    python -m dataprep estimate --input warc.paths.gz --base s3a://commoncrawl/ --sample 8 --cores 512

In one process: the Spark session's start, then the pipeline on half the sampled files (cold, then
warm), on all of them (the real stages, into OUT/sample/<stage>/) and on the half once more. model.py turns these into the listing's
CPU-hours per stage, documents, bytes, tokens, memory per executor and wall time; the table is printed
and OUT/estimate.json written (./estimate.json without --out, the runs then in a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq

from blending.stage_folder import list_parts
from blending.typed_config import check_safe_name
from dataprep.cli import USER_ERRORS, bad_input, spark_session
from dataprep.estimate.measure import RunCost, measured_run, startup_cost
from dataprep.estimate.meter import TreeMeter
from dataprep.estimate.model import (
    DEFAULT_BYTES_PER_TOKEN,
    Cost,
    Scale,
    combined_error,
    fit_stage,
    listing_bytes,
    mean_cost,
    measurement_error,
    parallel_efficiency,
    relative_error,
    wall_at_cores,
)
from dataprep.estimate.sample import draw_sample, file_size, listing_sizes, per_file_figures
from dataprep.framework.inputs import COMMON_CRAWL_BASE, check_local_patterns, expand_inputs
from dataprep.pipeline import RunConfigError, SourceSpec, add_pipeline_options, load_run_config, prepare_options
from dataprep.schema import DEFAULT_SOURCE

ESTIMATE_FILE = "estimate.json"
RUNS = ("half-cold", "half-warm", "sample", "half-after")  # the half warm on both sides of the sample


def estimate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataprep estimate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the pipeline on a seeded sample of the input's files and project the whole input's "
                    "cost: CPU-hours per stage, output documents, bytes and tokens, peak memory per executor, "
                    "wall time on --cores executor cores.",
        epilog=__doc__.split("\n\n", 1)[1] + "\nThe model: docs/estimate.md.")
    parser.add_argument("--input", required=True, nargs="+", action="extend", metavar="PATH",
                        help="what `run --input` takes: WARC files, globs, folders' files, a warc.paths(.gz) listing")
    parser.add_argument("--sample", type=int, default=4, metavar="N", help="files to run on, at least 2 (4)")
    parser.add_argument("--sample-seed", type=int, default=0, metavar="S", help="which files the sample draws (0)")
    parser.add_argument("--cores", type=int, metavar="C", help="executor cores to project the wall time for "
                                                                "(default: this machine's Spark cores)")
    parser.add_argument("--executor-cores", type=int, default=4, metavar="K",
                        help="cores per executor, for memory per executor and executors' start-up (4)")
    parser.add_argument("--tokenizer", metavar="FILE", help="tokenizer.json to count the output's tokens with "
                        f"(default: estimated at {DEFAULT_BYTES_PER_TOKEN} bytes per token)")
    parser.add_argument("--out", metavar="DIR", help="the runs' folder and estimate.json (default: a temporary "
                                                     "folder, removed; ./estimate.json)")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"the documents' source name ({DEFAULT_SOURCE})")
    parser.add_argument("--format", help="the files are already-extracted text of this format (jsonl, parquet, "
                                         "text: the ingest stage)")
    parser.add_argument("--master", help="Spark master (default: spark-submit's, else $SPARK_MASTER, else local[*])")
    parser.add_argument("--config", help="YAML overriding the paper's defaults (sections of DataprepConfig)")
    parser.add_argument("--num-buckets", type=int, help="number of output files (output.num_buckets, 16)")
    add_pipeline_options(parser)
    return parser


SKIP = {"input", "sample", "sample_seed", "cores", "executor_cores", "tokenizer", "out", "source", "format", "master",
        "config", "num_buckets"}


def estimate_command(argv: list[str]) -> int:
    parser = estimate_parser()
    args = parser.parse_args(argv)
    if args.sample < 2:
        parser.error("--sample: at least 2 files (the model's slope is between half of them and all)")
    meter = TreeMeter().start()
    temporary = args.out is None
    out = Path(args.out or tempfile.mkdtemp(prefix="dataprep-estimate-"))
    try:
        config, sources = load_run_config(args.config)
        if sources:
            raise RunConfigError(f"{args.config}: `sources:`: an estimate runs one source, the one --input names")
        if args.num_buckets:
            config.output.num_buckets = args.num_buckets
        options = {k: v for k, v in vars(args).items() if k not in SKIP}
        check_local_patterns(args.input)
        files = expand_inputs(args.input, options.get("base") or COMMON_CRAWL_BASE, options.pop("max_files"))
        sample = draw_sample(files, args.sample, args.sample_seed)
        sizes = [file_size(f) for f in sample]
        if None in sizes:
            raise FileNotFoundError(f"cannot tell the size of {sample[sizes.index(None)]}")
        half = sample[:(len(sample) + 1) // 2]
        options = prepare_options(config, options)
        kind, own = ("ingest", {"format": args.format}) if args.format else ("extract", {})
        source = check_safe_name(args.source, "--source")
        with spark_session(args.master, "dataprep-estimate") as spark:
            startup = startup_cost(meter)
            runs: dict[str, RunCost] = {}
            for name in RUNS:
                inputs = sample if name == "sample" else half
                print(f"=== estimate: {name} run on {len(inputs)} file(s) -> {out / name}", flush=True)
                runs[name] = measured_run(spark, meter, [SourceSpec(source, kind, inputs, own)], str(out / name),
                                          config, options, overwrite=True)
            local_cores = spark.sparkContext.defaultParallelism
    except (*USER_ERRORS, RunConfigError) as e:
        _clean_up(out, temporary)
        return bad_input("dataprep estimate", e)
    finally:
        meter.stop()
    scale = Scale(len(sample), len(files), sum(sizes), *listing_bytes(sizes, listing_sizes(files), len(files)))
    record = estimate_record(args, sample, sizes, len(half), scale, startup, runs, meter, local_cores)
    path = (Path.cwd() if temporary else out) / ESTIMATE_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(estimate_table(record))
    print(f"-> {path}")
    _clean_up(out, temporary)
    return 0


def _clean_up(out: Path, temporary: bool) -> None:
    """The half's runs go; the sample's stage folders stay in a folder the user named."""
    if temporary:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in (n for n in RUNS if n != "sample"):
        shutil.rmtree(out / name, ignore_errors=True)


def estimate_record(args, sample: list[str], sizes: list[int], half: int, scale: Scale, startup: Cost,
                    runs: dict[str, RunCost], meter: TreeMeter, local_cores: int) -> dict:
    """estimate.json: what was measured, the fitted model and the projection (docs/estimate.md); the
    half runs were on the first `half` sampled files."""
    half_bytes = sum(sizes[:half])
    cold, before, measured, after = (runs[name] for name in RUNS)
    models = [fit_stage(stage, cold.stages[stage], mean_cost(before.stages[stage], after.stages[stage]), cost,
                        half_bytes, scale.sample_bytes)
              for stage, cost in measured.stages.items()]
    done = {stats.stage: (folder, stats) for folder, stats in measured.done}
    final_folder, final = measured.done[-1]
    first_folder = measured.done[0][0]
    output = _documents(final_folder, ["origin", "text"])
    per_file = per_file_figures(output["origin"], [len(t.encode()) for t in output["text"]], sample)
    extracted = _documents(first_folder, ["origin", "text"])
    extracted_bytes = per_file_figures(extracted["origin"], [len(t.encode()) for t in extracted["text"]], sample)
    errors = {name: relative_error(sizes, values, scale.listing_files, scale.listing_bytes_known)
              for name, values in [*per_file.items(), ("cpu", extracted_bytes["bytes"])]}
    tokens, method = _tokens(args.tokenizer, output["text"], final.out_bytes)
    cores = args.cores or local_cores
    efficiency = parallel_efficiency(models, local_cores)
    executors = math.ceil(cores / args.executor_cores)
    stages = {}
    for model in models:
        cost = model.at(scale.listing_bytes)
        stats = done[model.stage][1] if model.stage in done else None
        noise = measurement_error(before.stages[model.stage].cpu_s, after.stages[model.stage].cpu_s, half_bytes,
                                  scale.sample_bytes, scale.listing_bytes)
        stages[model.stage] = {
            "cpu_s": cost.cpu_s, "cpu_hours": cost.cpu_s / 3600, "cpu_measurement_error_s": noise,
            "documents": round(stats.out_rows * scale.factor) if stats else None,
            "bytes": round(stats.out_bytes * scale.factor) if stats else None,
            "wall_s_at_cores": wall_at_cores(model, scale.listing_bytes, cores,
                                             scale.listing_files if model.stage == measured.done[0][1].stage
                                             else None, efficiency)}
    cpu = startup.cpu_s + sum(s["cpu_s"] for s in stages.values())
    noise = math.hypot(*(s["cpu_measurement_error_s"] for s in stages.values()))
    start_up_per_executor = startup.cpu_s + sum(m.one_time.cpu_s for m in models)
    peaks = meter.peaks
    return {
        "version": 1,
        "listing": {"inputs": args.input, "files": scale.listing_files, "bytes": scale.listing_bytes,
                    "bytes_known": scale.listing_bytes_known},
        "sample": {"seed": args.sample_seed, "files": sample, "sizes": sizes, "bytes": scale.sample_bytes,
                   "half": {"files": half, "bytes": half_bytes}, "per_file": per_file,
                   "extracted_bytes_per_file": extracted_bytes["bytes"]},
        "measured": {"local_cores": local_cores, "startup": asdict(startup),
                     **{name: {s: asdict(c) for s, c in runs[name].stages.items()} for name in RUNS},
                     "sample_output": {"documents": final.out_rows, "bytes": final.out_bytes}},
        "model": {m.stage: {"one_time": asdict(m.one_time), "per_run": asdict(m.per_run),
                            "per_byte": asdict(m.per_byte)} for m in models},
        "projected": {
            "scale": scale.factor,
            "startup": {"cpu_s": startup.cpu_s, "wall_s": startup.wall_s},
            "stages": stages,
            "cpu_s": cpu, "cpu_hours": cpu / 3600, "cpu_relative_error": combined_error(errors["cpu"], noise, cpu),
            "documents": round(final.out_rows * scale.factor), "documents_relative_error": errors["documents"],
            "bytes": round(final.out_bytes * scale.factor), "bytes_relative_error": errors["bytes"],
            "tokens": round(tokens * scale.factor), "tokens_method": method,
            "bytes_per_token": final.out_bytes / tokens if tokens else None,
            "memory": {"jvm_bytes": peaks.jvm_bytes, "worker_bytes": peaks.worker_bytes,
                       "executor_cores": args.executor_cores,
                       "per_executor_bytes": peaks.jvm_bytes + args.executor_cores * peaks.worker_bytes},
            "cores": {"cores": cores, "executors": executors, "parallel_efficiency": efficiency,
                      "wall_s": startup.wall_s + sum(s["wall_s_at_cores"] for s in stages.values()),
                      "cpu_s": cpu + (executors - 1) * start_up_per_executor},
        },
    }


def _documents(folder: str, columns: list[str]) -> dict[str, list]:
    figures: dict[str, list] = {c: [] for c in columns}
    for part in list_parts(folder):
        for column, values in pq.read_table(part, columns=columns).to_pydict().items():
            figures[column] += values
    return figures


def _tokens(tokenizer_file: str | None, texts: list[str], out_bytes: int) -> tuple[float, str]:
    """The sample's output tokens, and how they were had: counted with the tokenizer (one end-of-document
    token per document included, as the shards hold them), or estimated from bytes."""
    if tokenizer_file is None:
        return out_bytes / DEFAULT_BYTES_PER_TOKEN, f"estimated at {DEFAULT_BYTES_PER_TOKEN} bytes per token " \
                                                    "(GPT-2's BPE on English text; --tokenizer counts them)"
    from blending.tokenizer import EOD_TOKEN, encode_documents, eod_id, load_tokenizer, token_dtype, vocab_size

    tokenizer = load_tokenizer(tokenizer_file)
    flat, _ = encode_documents(tokenizer, texts, eod_id(tokenizer, EOD_TOKEN), token_dtype(vocab_size(tokenizer)))
    return float(len(flat)), f"counted with {tokenizer_file} on the sample's output, end-of-document tokens included"


def _human(n: float, unit: str = "B") -> str:
    for prefix in ("", "k", "M", "G", "T", "P"):
        if abs(n) < 1000 or prefix == "P":
            return f"{n:.0f} {prefix}{unit}" if not prefix else f"{n:.1f} {prefix}{unit}"
        n /= 1000
    return f"{n} {unit}"


def _pm(error: float | None) -> str:
    return f" ±{100 * error:.0f}%" if error is not None else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_table(record: dict) -> str:
    """The projection as people read it: one line per stage, then output, memory and wall time."""
    listing, sample, projected = record["listing"], record["sample"], record["projected"]
    known = "" if listing["bytes_known"] else ", estimated from the sampled files' mean size"
    lines = [f"estimate for {listing['files']:,} files ({_human(listing['bytes'])}{known}) from {len(sample['files'])} "
             f"sampled file(s) ({_human(sample['bytes'])}, seed {sample['seed']}), x{projected['scale']:.1f}",
             f"  {'stage':<15} {'CPU-s':>10} {'CPU-hours':>10} {'documents':>12} {'bytes':>10}",
             f"  {'(start-up)':<15} {projected['startup']['cpu_s']:>10.1f} {projected['startup']['cpu_s'] / 3600:>10.3f}"]
    for stage, s in projected["stages"].items():
        docs = f"{s['documents']:,}" if s["documents"] is not None else "-"
        size = _human(s["bytes"]) if s["bytes"] is not None else "-"
        noise = f"±{s['cpu_measurement_error_s']:.1f}" if s["cpu_measurement_error_s"] else ""
        lines.append(f"  {stage:<15} {s['cpu_s']:>10.1f} {s['cpu_hours']:>10.3f} {docs:>12} {size:>10}  {noise}")
    lines.append(f"  {'total':<15} {projected['cpu_s']:>10.1f} {projected['cpu_hours']:>10.3f}"
                 f"{_pm(projected['cpu_relative_error'])}")
    memory, cores = projected["memory"], projected["cores"]
    lines += [
        f"output: {projected['documents']:,} documents{_pm(projected['documents_relative_error'])}, "
        f"{_human(projected['bytes'])}{_pm(projected['bytes_relative_error'])}, "
        f"{_human(projected['tokens'], 'tokens')} ({projected['tokens_method']})",
        f"peak memory per executor of {memory['executor_cores']} cores: JVM {_human(memory['jvm_bytes'])} + "
        f"{memory['executor_cores']} x Python worker {_human(memory['worker_bytes'])} = "
        f"{_human(memory['per_executor_bytes'])} (resident, as measured on the sample)",
        f"on {cores['cores']} executor cores ({cores['executors']} executor(s)): wall {_duration(cores['wall_s'])}, "
        f"{cores['cpu_s'] / 3600:.3f} CPU-hours with each executor's start-up; parallel efficiency "
        f"{cores['parallel_efficiency']:.2f} (measured on the sample, {record['measured']['local_cores']} local cores)",
        "± is about two standard errors: of the spread between sampled files (documents, bytes; CPU: extracted "
        "bytes per file) and, for CPU, of the measurement noise the two warm half runs show (per stage, in seconds)",
    ]
    return "\n".join(lines)
