"""Does each curation stage help? The same model trained on the same number of tokens of each variant of
the data, with several seeds, scored on the same held-out text (docs/ablation.md).

    python -m trainer.ablate --documents out/documents --out out/demo/ablation [--stages cleanup,dedup]
        [--variant NAME=FOLDER ...] [--tokens N] [--seeds 1,2] [--preset tiny-cpu] [--set KEY=VALUE ...]
        [--eval-text FOLDER] [--eval-tasks lambada,piqa] [--eval-limit 100] [--jobs 2]

Variants are the stage folders of a `dataprep run` folder and/or named stage folders; each gets shards
under OUT/<variant>/shards, all with one tokenizer. Every run trains on the smallest variant's training
tokens (or fewer, `--tokens`), so no variant is read more than once. OUT/ablation.json holds the
held-out loss, the own-validation loss and the downstream scores per run and per variant (mean and
spread over seeds); OUT/ablation.png the curves. Unchanged runs are reused, not trained again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.ablation_summary import aggregate, format_table, plot, table

ROOT = Path(__file__).resolve().parents[1]
RESULT = "ablation_run.json"  # in each run folder: its keys and its scores
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class AblationError(ValueError):
    """Bad input: a missing folder, an unknown stage, a budget that cannot be met."""


@dataclass
class Variant:
    name: str
    folder: Path
    stage: str
    text_bytes: int


@dataclass
class Run:
    variant: Variant
    seed: int
    folder: Path
    command: list[str]
    train_key: str
    result_key: str


# --- the variants ----------------------------------------------------------------------------------------


def stage_variants(documents: Path, stages: list[str] | None) -> list[Variant]:
    """The stage folders of a `dataprep run` folder, upstream first (all of them, or those of `stages`)."""
    from blending.stages import find_stage_folders

    if not documents.is_dir():
        raise AblationError(f"--documents {documents}: no such folder")
    found = [f for f in find_stage_folders(documents) if f.name != "blend" and f.stats]
    if not found:
        raise AblationError(f"--documents {documents}: no finished stage folder in it")
    unknown = sorted(set(stages or []) - {f.name for f in found})
    if unknown:
        raise AblationError(f"--stages: no {', '.join(unknown)} folder under {documents} "
                            f"(found: {', '.join(f.name for f in found)})")
    chosen = [f for f in found if stages is None or f.name in stages]
    names = [f.name for f in chosen]
    return [Variant(f.name if names.count(f.name) == 1 else f.path.relative_to(documents).as_posix().replace("/", "-"),
                    f.path, f.name, f.stats["out"]["bytes"]) for f in chosen]


def named_variant(spec: str) -> Variant:
    """`NAME=FOLDER`: a stage folder, or a `dataprep run` folder (its last stage)."""
    from blending.stage_folder import FINAL_STAGE, read_stats

    name, _, folder = spec.partition("=")
    if not _NAME.match(name) or not folder:
        raise AblationError(f"--variant {spec!r}: give NAME=FOLDER, NAME of letters, digits, '_', '.', '-'")
    path = Path(folder)
    if not (path / "_SUCCESS").is_file() and (path / FINAL_STAGE / "_SUCCESS").is_file():
        path = path / FINAL_STAGE
    if not (path / "_SUCCESS").is_file():
        raise AblationError(f"--variant {spec}: {folder} is not a finished stage folder or dataprep run folder")
    stats = read_stats(str(path)) or {}
    return Variant(name, path, stats.get("stage", "?"), stats.get("out", {}).get("bytes", 0))


def source_values(folder: Path) -> list[str]:
    """The `source` values of a stage folder's documents: each is a source of the variant's blend."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from blending.stage_folder import list_parts

    values: set[str] = set()
    for part in list_parts(str(folder)):
        values |= set(pc.unique(pq.read_table(part, columns=["source"])["source"]).to_pylist())
    return sorted(v for v in values if v is not None)


# --- tokenizer and shards --------------------------------------------------------------------------------


def blend_config(variant: Variant, tokenizer_file: Path, valid_fraction: float, train_vocab: int | None = None):
    """The variant's blend: each of its sources at equal weight, the shared tokenizer."""
    from blending.config import BlendConfig

    sources = [{"name": s, "inputs": [str(variant.folder)], "weight": 1.0} for s in source_values(variant.folder)]
    if not sources:
        raise AblationError(f"variant {variant.name}: {variant.folder} holds no documents")
    return BlendConfig.from_dict({"tokenizer": {"file": str(tokenizer_file), "train_vocab_size": train_vocab},
                                  "valid_fraction": valid_fraction, "sources": sources})


def shared_tokenizer(variants: list[Variant], out: Path, vocab: int, valid_fraction: float, log) -> Path:
    """OUT/tokenizer/tokenizer.json, trained on the training documents of the largest variant; trained
    again when that variant's documents or the settings change."""
    from blending.build import resolve_tokenizer
    from blending.stage_folder import folder_record

    largest = max(variants, key=lambda v: v.text_bytes)
    path = out / "tokenizer" / "tokenizer.json"
    stamp = path.with_name("trained_on.json")
    record = {"variant": largest.name, "folder": folder_record(str(largest.folder)), "vocab_size": vocab,
              "valid_fraction": valid_fraction}
    if path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == record:
        return path
    path.unlink(missing_ok=True)
    resolve_tokenizer(blend_config(largest, path, valid_fraction, vocab), log)
    stamp.write_text(json.dumps(record, indent=1))
    return path


def build_shards(variant: Variant, out: Path, tokenizer_file: Path, valid_fraction: float, log) -> Path:
    from blending.build import build

    config = blend_config(variant, tokenizer_file, valid_fraction)
    return build(config, out / variant.name / "shards", allow_partial=True, replace_changed=True, log=log)


def train_split(manifest_path: Path) -> tuple[int, int]:
    """(documents, tokens) of the manifest's training split."""
    manifest = json.loads(manifest_path.read_text())
    shards = [shard for source in manifest["sources"].values() for shard in source["train"]]
    return sum(s["documents"] for s in shards), sum(s["tokens"] for s in shards)


# --- the budget and the runs -----------------------------------------------------------------------------


def train_config(preset: str, overrides: list[str]):
    from trainer.config import apply_override
    from trainer.presets import get_preset

    cfg = get_preset(preset)
    for assignment in overrides:
        apply_override(cfg, assignment)
    return cfg


def token_budget(train_tokens: dict[str, int], requested: int | None, tokens_per_batch: int) -> int:
    """The smallest variant's training tokens, or `requested` when fewer; whole global batches."""
    smallest = min(train_tokens, key=train_tokens.get)
    budget = requested or train_tokens[smallest]
    if budget > train_tokens[smallest]:
        raise AblationError(f"--tokens {requested:,}: variant {smallest} has {train_tokens[smallest]:,} training "
                            "tokens, and no variant is read more than once; ask for at most that many")
    budget -= budget % tokens_per_batch
    if budget < tokens_per_batch:
        raise AblationError(f"variant {smallest} has {train_tokens[smallest]:,} training tokens, less than one "
                            f"global batch ({tokens_per_batch:,} tokens)")
    return budget


def run_overrides(cfg, budget: int, seed: int, user: list[str]) -> list[str]:
    """One process, `budget` tokens with the lr decayed over them, checkpoint only at the end; the
    user's --set last."""
    warmup = min(cfg.optimizer.warmup_tokens, budget // 10)
    return ["parallel.tensor=1", "parallel.pipeline=1", f"seed={seed}", f"train_tokens={budget}",
            f"optimizer.decay_tokens={budget}", f"optimizer.warmup_tokens={warmup}", "run.save_interval=0",
            "run.keep_checkpoints=1", *user]


def digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def plan_run(variant: Variant, seed: int, manifest: Path, args, cfg, budget: int, scoring: dict) -> Run:
    from blending.hashing import sha256_file

    overrides = run_overrides(cfg, budget, seed, args.overrides)
    folder = args.out / variant.name / f"seed_{seed}"
    sets = [a for o in overrides for a in ("--set", o)]
    command = [sys.executable, "-m", "trainer.train", "--preset", args.preset, "--manifest", str(manifest),
               "--out", str(folder), "--resume", *sets]
    train_key = digest({"manifest": sha256_file(manifest), "preset": args.preset, "overrides": overrides})
    return Run(variant, seed, folder, command, train_key, digest({"train": train_key, "scoring": scoring}))


def read_result(run: Run) -> dict | None:
    """The run's scores when they were made with the same keys."""
    try:
        result = json.loads((run.folder / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return result.get("result") if result.get("result_key") == run.result_key else None


def trained(run: Run) -> bool:
    """The run finished the training its key names (only its scoring is missing or stale)."""
    try:
        same = json.loads((run.folder / RESULT).read_text()).get("train_key") == run.train_key
        return same and json.loads((run.folder / "summary.json").read_text()).get("status") == "done"
    except (OSError, ValueError):
        return False


def prepare_folder(run: Run) -> None:
    """A run folder of another training (other shards or config) is cleared; a stopped one is resumed."""
    try:
        stale = json.loads((run.folder / RESULT).read_text()).get("train_key") != run.train_key
    except (OSError, ValueError):
        stale = run.folder.exists() and any(run.folder.iterdir())
    if stale:
        shutil.rmtree(run.folder)
    run.folder.mkdir(parents=True, exist_ok=True)
    (run.folder / RESULT).write_text(json.dumps({"train_key": run.train_key}))


def launch_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def train_all(runs: list[Run], jobs: int, log) -> None:
    """Train the runs, `jobs` processes at a time; each one's output in RUN/train.log."""
    pending, active, failed = list(runs), [], []
    while pending or active:
        while pending and len(active) < jobs:
            run = pending.pop(0)
            prepare_folder(run)
            with (run.folder / "train.log").open("w") as sink:
                active.append((run, subprocess.Popen(run.command, stdout=sink, stderr=subprocess.STDOUT, env=launch_env()),
                               time.perf_counter()))
            log(f"{run.variant.name} seed {run.seed}: training ({run.folder / 'train.log'})")
        time.sleep(0.2)
        for entry in [e for e in active if e[1].poll() is not None]:
            active.remove(entry)
            run, process, started = entry
            if process.returncode:
                failed.append(f"{run.folder / 'train.log'} (exit {process.returncode})")
            log(f"{run.variant.name} seed {run.seed}: trained in {time.perf_counter() - started:.0f} s"
                if not process.returncode else f"{run.variant.name} seed {run.seed}: training failed")
    if failed:
        raise AblationError(f"training failed, see {', '.join(failed)}")


# --- scoring ---------------------------------------------------------------------------------------------


def heldout_windows(texts, tokenizer_file: Path, seq_length: int, max_tokens: int) -> dict:
    from blending.tokenizer import load_tokenizer
    from trainer.heldout import windows

    tokenizer = load_tokenizer(tokenizer_file)
    return {t.name: windows(tokenizer, t.text(), seq_length, max_tokens) for t in texts}


def last_validation(run: Run) -> float | None:
    from trainer.metrics import read_csv

    rows = read_csv(run.folder / "valid.csv")
    return float(rows[-1]["val_loss"]) if rows else None


def score(run: Run, windows: dict, tasks: list[str], limit: int | None) -> dict:
    """The run's final model on the held-out texts (per text, and over all their tokens) and the tasks."""
    import torch

    from trainer.evaluate import evaluate, main_metric
    from trainer.heldout import mean_loss
    from trainer.inference import load_model
    from trainer.parallel.groups import release_process_groups

    had_groups = torch.distributed.is_initialized()
    try:
        model = load_model(run.folder)  # joins one-process groups, which this process must not keep
        per_text = {name: mean_loss(model, w) for name, w in windows.items()}
        tokens = {name: w[:, 1:].numel() for name, w in windows.items()}
        overall = sum(per_text[n] * tokens[n] for n in per_text) / sum(tokens.values())
        downstream = {}
        if tasks:
            result = evaluate(model, tasks, [0], limit=limit, log=lambda _: None)
            downstream = {t: result["tasks"][t]["by_shots"]["0"][main_metric(t)] for t in tasks}
    finally:
        if not had_groups:
            release_process_groups()
    return {"seed": run.seed, "run": str(run.folder), "valid_loss": last_validation(run), "heldout_loss": overall,
            "heldout": per_text, "downstream": downstream}


def scored(run: Run, windows: dict, tasks: list[str], limit: int | None) -> dict:
    result = score(run, windows, tasks, limit)
    (run.folder / RESULT).write_text(json.dumps({"train_key": run.train_key, "result_key": run.result_key,
                                                 "result": result}, indent=1))
    return result


# --- the command -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.ablate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=Path, help="a `python -m dataprep run` folder: one variant per stage")
    parser.add_argument("--stages", help="comma-separated stages of --documents to compare (default: all)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FOLDER",
                        help="a stage folder (or dataprep run folder) as a variant of its own (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="ablation folder: shards, runs, ablation.json")
    parser.add_argument("--tokens", type=int, help="training tokens per run (default: the smallest variant's)")
    parser.add_argument("--seeds", default="1,2", help="comma-separated seeds, at least two (default: %(default)s)")
    parser.add_argument("--preset", default="tiny-cpu", help="trainer preset (trainer.presets)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, as trainer.train's --set (repeatable)")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer.json for every variant (default: trained)")
    parser.add_argument("--vocab-size", type=int, default=8192, help="of the trained tokenizer (default: %(default)s)")
    parser.add_argument("--valid-fraction", type=float, default=0.02, help="documents in each variant's validation "
                        "split (default: %(default)s)")
    parser.add_argument("--eval-text", action="append", default=[], help="a folder of .txt files scored besides "
                        "the shipped held-out prose (repeatable)")
    parser.add_argument("--eval-tokens", type=int, default=32768, help="held-out tokens scored per text "
                        "(default: %(default)s)")
    parser.add_argument("--eval-tasks", default="lambada,piqa,hellaswag,winogrande,boolq",
                        help="downstream tasks, zero-shot ('' for none; default: %(default)s)")
    parser.add_argument("--eval-limit", type=int, default=100, help="first N items of each task (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="runs trained at once, one process each (default: the usable cores)")
    return parser.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise AblationError(f"--seeds {text!r}: give comma-separated integers") from None
    if len(seeds) < 2:
        raise AblationError(f"--seeds {text!r}: give at least two seeds (the spread over seeds is what a "
                            "difference between variants is measured against)")
    return seeds


def find_variants(args) -> list[Variant]:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    if args.documents is None and not args.variant:
        raise AblationError("give --documents (a dataprep run folder) or --variant NAME=FOLDER")
    variants = stage_variants(args.documents, stages) if args.documents else []
    variants += [named_variant(spec) for spec in args.variant]
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AblationError(f"variant {twice[0]} is named twice")
    if "tokenizer" in names:  # OUT/tokenizer holds the shared tokenizer
        raise AblationError("a variant cannot be named 'tokenizer'; name it otherwise with --variant NAME=FOLDER")
    return variants


def held_out_texts(args) -> list:
    from trainer.heldout import folder_texts, shipped_texts

    return shipped_texts() + [t for folder in args.eval_text for t in folder_texts(folder)]


def train_and_score(runs: list[Run], windows: dict, tasks: list[str], args, log) -> dict[tuple[str, int], dict]:
    """Each run's scores, by (variant, seed): reused when its keys match, else trained and scored."""
    results = {(r.variant.name, r.seed): read_result(r) for r in runs}
    for run in runs:
        if results[(run.variant.name, run.seed)]:
            log(f"{run.variant.name} seed {run.seed}: reused ({run.folder})")
    todo = [r for r in runs if results[(r.variant.name, r.seed)] is None]
    train_all([r for r in todo if not trained(r)], max(1, args.jobs), log)
    for run in todo:
        result = results[(run.variant.name, run.seed)] = scored(run, windows, tasks, args.eval_limit)
        log(f"{run.variant.name} seed {run.seed}: held-out loss {result['heldout_loss']:.4f}")
    return results


def ablate(args, log=print) -> dict:
    seeds = parse_seeds(args.seeds)
    variants = find_variants(args)
    cfg = train_config(args.preset, args.overrides)
    texts = held_out_texts(args)
    tasks = [t.strip() for t in args.eval_tasks.split(",") if t.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.tokenizer is not None and not args.tokenizer.is_file():
        raise AblationError(f"--tokenizer {args.tokenizer}: no such file")
    tokenizer = args.tokenizer or shared_tokenizer(variants, args.out, args.vocab_size, args.valid_fraction, log)
    manifests = {v.name: build_shards(v, args.out, tokenizer, args.valid_fraction, log) for v in variants}
    splits = {name: train_split(m) for name, m in manifests.items()}
    seq = cfg.model.seq_length
    budget = token_budget({n: s[1] for n, s in splits.items()}, args.tokens, cfg.batch.global_batch_size * seq)
    log(f"budget: {budget:,} tokens per run ({len(variants)} variants x {len(seeds)} seeds)")
    scoring = {"heldout": [t.sha256 for t in texts], "eval_tokens": args.eval_tokens, "tasks": tasks,
               "limit": args.eval_limit, "version": FORMAT_VERSION}
    runs = [plan_run(v, seed, manifests[v.name], args, cfg, budget, scoring) for v in variants for seed in seeds]
    windows = heldout_windows(texts, tokenizer, seq, args.eval_tokens)
    results = train_and_score(runs, windows, tasks, args, log)
    entries = [variant_entry(v, splits[v.name], manifests[v.name], budget, [results[(v.name, s)] for s in seeds], tasks)
               for v in variants]
    scored_tokens = {name: w[:, 1:].numel() for name, w in windows.items()}
    return summary(args, cfg, budget, seeds, tokenizer, texts, scored_tokens, tasks, entries)


def variant_entry(variant: Variant, split: tuple[int, int], manifest: Path, budget: int, runs: list[dict],
                  tasks: list[str]) -> dict:
    from blending.stage_folder import read_stats

    documents = (read_stats(str(variant.folder)) or {}).get("out", {}).get("rows", split[0])
    return {"name": variant.name, "stage": variant.stage, "folder": str(variant.folder), "documents": documents,
            "train_documents": split[0], "tokens": split[1], "epochs": budget / split[1], "shards": str(manifest),
            "runs": runs, **aggregate(runs, tasks)}


def summary(args, cfg, budget: int, seeds: list[int], tokenizer: Path, texts, scored_tokens: dict, tasks: list[str],
            variants: list[dict]) -> dict:
    from blending.hashing import sha256_file

    return {
        "format_version": FORMAT_VERSION,
        "budget": {"tokens": budget, "seq_length": cfg.model.seq_length,
                   "rule": "the smallest variant's training tokens, or --tokens when fewer, in whole global batches: "
                           "no variant is read more than once"},
        "preset": args.preset, "overrides": args.overrides, "seeds": seeds,
        "tokenizer": {"file": str(tokenizer), "sha256": sha256_file(tokenizer)},
        "heldout": [{**t.describe(), "tokens_scored": scored_tokens[t.name]} for t in texts],
        "eval_tasks": tasks, "eval_limit": args.eval_limit, "spread": "sample standard deviation over seeds",
        "variants": variants, "table": table(variants, tasks),
    }


def write_outputs(result: dict, out: Path) -> None:
    plot(result["variants"], out / "ablation.png")
    tmp = out / "ablation.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out / "ablation.json")


def main(argv: list[str] | None = None) -> int:
    from blending.config import ConfigError as BlendConfigError
    from blending.stage_folder import InputError
    from trainer.config import ConfigError
    from trainer.heldout import HeldOutError
    from trainer.inference import quiet_imports

    quiet_imports()
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        result = ablate(args)
    except (AblationError, ConfigError, BlendConfigError, InputError, HeldOutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_outputs(result, args.out)
    print(f"\nheld-out loss: nats per token on {', '.join(t['name'] for t in result['heldout'])}; mean ± spread over "
          f"seeds {','.join(map(str, result['seeds']))}; {result['budget']['tokens']:,} tokens per run\n")
    print(format_table(result["table"]))
    print(f"\nwrote {args.out / 'ablation.json'} and {args.out / 'ablation.png'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
