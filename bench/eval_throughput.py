"""Our evaluator against lm-evaluation-harness on the same exported model, tasks and items, in one run.

1. A small GPT is trained in one process (trainer.train) on shards built from ../shared/data prose
   (WikiText-2 valid and test, three Project Gutenberg books, a byte-level BPE of --vocab tokens), then exported with
   trainer.export_hf.
2. LAMBADA and PIQA (the first --limit items of the shipped files whose choices fit the model's
   context), zero-shot: trainer.evaluate on our checkpoint, and lm-evaluation-harness (`hf` model on the
   exported folder, offline, task YAMLs with `dataset_path: json` pointing at JSONL files of the same
   contexts and choices, samples logged as with `--log_samples`). Both batch 32 requests.
3. Both models are loaded before timing. Each evaluation (task loading, requests, scoring, metrics) is
   timed --repeats times in float32 after an untimed warm-up (lm-eval's first run also builds its dataset
   cache), alternating; items/s are medians over the repeats. `ratio` = our items/s over lm-eval's.
4. One more pass of each with the model in float64: `max_abs_loglikelihood_diff` is the largest
   difference of any item's choice log-likelihood there (`..._fp32`: the same in the timed float32 runs,
   where a sum over a long answer carries float32 rounding).

    .venv/bin/python bench/eval_throughput.py [--limit 400] [--steps 150] [--repeats 3] [--smoke]
Needs lm-eval (requirements-bench.txt). Prints progress, a table, then one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _shared import data_folder  # noqa: E402

TASKS = ("lambada", "piqa")
README_FIGURES = ("ratio", "max_abs_loglikelihood_diff")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=400, help="items per task (of those that fit the context)")
    p.add_argument("--steps", type=int, default=150, help="training steps of the model")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--work", help="folder for shards, run and export (default: a temporary one)")
    p.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = p.parse_args()
    if args.smoke:
        args.limit, args.steps, args.vocab, args.seq, args.repeats, args.batch_size = 8, 2, 512, 64, 1, 8
    return args


def prose_documents(prose: Path) -> list[str]:
    """WikiText-2 paragraphs (one per line) and book paragraphs, 200 characters or more."""
    texts = []
    for part in ("valid.txt", "test.txt"):
        lines = (prose / "wikitext-2" / part).read_text(encoding="utf-8").splitlines()
        texts += [line.strip() for line in lines if len(line.strip()) > 200 and not line.strip().startswith("=")]
    for book in sorted((prose / "gutenberg").glob("*.txt")):
        raw = book.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        texts += [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if len(p.strip()) > 200]
    return texts


def build_shards(prose: Path, out: Path, vocab: int) -> Path:
    from blending.indexed import IndexedDatasetWriter
    from blending.manifest import manifest_dict, write_manifest
    from blending.tokenizer import EOD_TOKEN, encode_documents, eod_id, token_dtype, train_bpe, vocab_size

    docs = prose_documents(prose)
    splits = {"train": [d for i, d in enumerate(docs) if i % 50], "valid": docs[::50]}
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe(splits["train"], vocab_size=vocab)
    tokenizer.save(str(out / "tokenizer.json"))
    eod, dtype = eod_id(tokenizer, EOD_TOKEN), token_dtype(vocab_size(tokenizer))
    entry = {"weight": 1.0}
    (out / "prose").mkdir(exist_ok=True)
    for split, texts in splits.items():
        prefix = f"prose/{split}_00000"
        writer = IndexedDatasetWriter(out / prefix, dtype)
        writer.add_documents(*encode_documents(tokenizer, texts, eod, dtype))
        shard = writer.close()
        entry[split] = [{"prefix": prefix, "documents": shard.documents, "tokens": shard.tokens,
                         "bin": {"bytes": shard.bin.bytes, "sha256": shard.bin.sha256},
                         "idx": {"bytes": shard.idx.bytes, "sha256": shard.idx.sha256}}]
    tok = {"file": "tokenizer.json", "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
           "vocab_size": vocab_size(tokenizer), "eod_id": eod}
    return write_manifest(out, manifest_dict(tok, {"prose": entry}))


def train(manifest: Path, run: Path, steps: int, seq: int) -> None:
    tokens = steps * 32 * seq
    sets = {"parallel.tensor": 1, "parallel.pipeline": 1, "model.seq_length": seq, "batch.micro_batch_size": 8,
            "batch.global_batch_size": 32, "batch.rampup_start": 32, "batch.rampup_increment": 32,
            "optimizer.warmup_tokens": tokens // 20, "optimizer.decay_tokens": tokens, "train_tokens": tokens,
            "run.eval_interval": 0, "run.save_interval": 0, "run.log_interval": 25}
    command = [sys.executable, "-m", "trainer.train", "--preset", "tiny-cpu", "--manifest", str(manifest), "--out",
               str(run), *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    subprocess.run(command, cwd=REPO, check=True, env=dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu"))


def fitting_items(model, task: str, limit: int) -> list:
    """The first `limit` evaluated items whose every choice fits the model's context (as trainer.evaluate)."""
    from blending.evaltasks import load_task
    from trainer.evaluate import encode_pair, eval_split

    items = load_task(task)
    split = eval_split(items)
    kept = []
    for item in items:
        if item.split != split or item.gold is None:
            continue
        if all(len(encode_pair(model.tokenizer, item.context, c).continuation) <= model.seq_length for c in item.choices):
            kept.append(item)
        if len(kept) == limit:
            break
    return kept


def write_lm_eval_tasks(items_by_task: dict, folder: Path) -> None:
    """JSONL files of exactly our contexts and choices, and a YAML per task reading them (dataset_path: json)."""
    for task, items in items_by_task.items():
        data = folder / f"{task}.jsonl"
        with data.open("w") as sink:
            for item in items:
                sink.write(json.dumps({"context": item.context, "choices": list(item.choices), "gold": item.gold}) + "\n")
        if task == "lambada":
            body = ("output_type: loglikelihood\ndoc_to_target: \"{{choices[0]}}\"\n"
                    "metric_list:\n  - metric: perplexity\n    aggregation: perplexity\n    higher_is_better: false\n"
                    "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
        else:
            body = ("output_type: multiple_choice\ndoc_to_choice: \"{{choices}}\"\ndoc_to_target: gold\n"
                    "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
        (folder / f"{task}.yaml").write_text(
            f"task: ours_{task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            f"test_split: test\ndoc_to_text: \"{{{{context}}}}\"\ntarget_delimiter: \"\"\n{body}")


def lm_eval_model(hf_dir: Path, batch_size: int, dtype: str = "float32"):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(hf_dir), dtype=dtype, batch_size=batch_size, device="cpu")


def run_lm_eval(lm, task_dir: Path) -> tuple[float, dict]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    results = lm_eval.simple_evaluate(model=lm, tasks=[f"ours_{t}" for t in TASKS],
                                      task_manager=TaskManager(include_path=str(task_dir)), log_samples=True,
                                      num_fewshot=0, bootstrap_iters=0)
    return time.perf_counter() - started, results


def run_ours(model, items_by_task: dict, batch_size: int) -> tuple[float, dict]:
    from trainer.evaluate import evaluate_task

    started = time.perf_counter()
    out = {task: evaluate_task(model, task, items, shots=0, batch_size=batch_size) for task, items in items_by_task.items()}
    return time.perf_counter() - started, out


def lm_eval_loglikelihoods(results: dict, task: str) -> dict[int, list[float]]:
    return {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in results["samples"][f"ours_{task}"]}


def max_differences(records: list[dict], reference: dict[int, list[float]]) -> float:
    return max(abs(a - b) for n, r in enumerate(records) for a, b in zip(r["loglikelihoods"], reference[n], strict=True))


def main() -> None:
    args = parse_args()
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        print("lm-eval is not installed (requirements-bench.txt; `make bench` installs it)", file=sys.stderr)
        sys.exit(77)  # cannot run here: make bench reports it as skipped
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    import torch

    from trainer.export_hf import export
    from trainer.inference import load_model

    work = Path(args.work or tempfile.mkdtemp(prefix="eval-bench-"))
    manifest = work / "shards" / "manifest.json"
    if not manifest.exists():
        prose = data_folder(args.smoke) / "prose"
        print(f"building shards from {prose}", flush=True)
        manifest = build_shards(prose, work / "shards", args.vocab)
    run = work / "run"
    if not (run / "checkpoints" / "latest").exists():
        print(f"training {args.steps} steps", flush=True)
        train(manifest, run, args.steps, args.seq)
    hf_dir = export(run, work / "hf")
    model = load_model(run)
    items_by_task = {task: fitting_items(model, task, args.limit) for task in TASKS}
    items = sum(len(v) for v in items_by_task.values())
    task_dir = work / "lm_eval_tasks"
    task_dir.mkdir(exist_ok=True)
    write_lm_eval_tasks(items_by_task, task_dir)

    lm = lm_eval_model(hf_dir, args.batch_size)  # both models are loaded before timing
    run_lm_eval(lm, task_dir)  # warm-up: dataset cache, imports
    run_ours(model, items_by_task, args.batch_size)
    ours_s, theirs_s = [], []
    for repeat in range(args.repeats):
        seconds, ours = run_ours(model, items_by_task, args.batch_size)
        ours_s.append(seconds)
        seconds, theirs = run_lm_eval(lm, task_dir)
        theirs_s.append(seconds)
        print(f"repeat {repeat + 1}: ours {ours_s[-1]:.2f} s, lm-eval {theirs_s[-1]:.2f} s for {items} items", flush=True)

    # The per-item comparison in double precision on both sides: a float32 log-likelihood summed over a
    # 200-token PIQA answer carries rounding of ~1e-4 in either implementation.
    print("one more pass of each in float64 for the per-item comparison", flush=True)
    _, ours64 = run_ours(load_model(run, dtype=torch.float64), items_by_task, args.batch_size)
    _, theirs64 = run_lm_eval(lm_eval_model(hf_dir, args.batch_size, "float64"), task_dir)
    per_task = {}
    worst = worst32 = 0.0
    for task in TASKS:
        diffs = max_differences(ours64[task][1], lm_eval_loglikelihoods(theirs64, task))
        diffs32 = max_differences(ours[task][1], lm_eval_loglikelihoods(theirs, task))
        worst, worst32 = max(worst, diffs), max(worst32, diffs32)
        metrics = ours[task][0]
        per_task[task] = {"items": metrics["items"], "max_abs_loglikelihood_diff": diffs,
                          "max_abs_loglikelihood_diff_fp32": diffs32, "acc": metrics["acc"],
                          "lm_eval_acc": theirs["results"][f"ours_{task}"].get("acc,none")}
        print(f"{task}: {metrics['items']} items, ours acc {metrics['acc']:.4f}, lm-eval acc "
              f"{per_task[task]['lm_eval_acc']:.4f}, max |loglikelihood difference| {diffs:.2e} (float64), "
              f"{diffs32:.2e} (float32)", flush=True)
    ours_rate = items / statistics.median(ours_s)
    theirs_rate = items / statistics.median(theirs_s)
    print(json.dumps({"ratio": round(ours_rate / theirs_rate, 3), "items_per_s": round(ours_rate, 2),
                      "lm_eval_items_per_s": round(theirs_rate, 2), "max_abs_loglikelihood_diff": worst,
                      "max_abs_loglikelihood_diff_fp32": worst32,
                      "items": items, "tasks": per_task, "model": f"{model.full.config.model.num_layers}L "
                      f"h{model.full.config.model.hidden_size} seq {model.seq_length} vocab {model.vocab_size}"}))


if __name__ == "__main__":
    main()
