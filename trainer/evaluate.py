"""Zero-, one- and few-shot evaluation of a checkpoint on downstream tasks, as the paper reports them.

    python -m trainer.evaluate --checkpoint RUN --tasks lambada,piqa,hellaswag --shots 0,1,5 [--limit 500]
        [--contaminated found.jsonl] [--out RUN/eval.json] [--log-items RUN/eval_items.jsonl]

Tasks are blending.evaltasks' (the files the repository ships; `--task-file NAME=PATH` reads another
copy of a known task's format). A checkpoint of any TP x PP layout is loaded into one process
(trainer.inference).

Scoring, per item:
- LAMBADA: accuracy when greedy decoding reproduces the whole last word (every token of it is the
  argmax), and perplexity exp(-mean log-likelihood of the last word).
- multiple choice: the log-likelihood of each choice after the context; `acc` takes the largest,
  `acc_norm` the largest per character of the choice (as HellaSwag is reported). An item with a choice
  longer than the model's context is skipped and counted (`skipped_too_long`).
Tokens are those of lm-evaluation-harness (context and context+choice encoded, the choice being the
difference; spaces ending the context move to the choice; left truncation to the model's length),
so per-item log-likelihoods can be compared with it (bench/eval_throughput.py).

k-shot prompts: k solved examples ("context + gold choice", separated by a blank line) before the item,
drawn deterministically (seed, task, item) from the task's train split, else from a split other than
the evaluated one, else from the evaluated split without the item itself.

`--contaminated` names the task items that the decontamination stage found in the training data
(JSONL lines or a JSON list of {"task", "split", "index"}); each task then also reports its accuracy on
the clean subset (the items not found), as the paper does.

eval.json: {"checkpoint", "step", "tokens", "shots": [..], "tasks": {task: {"split", "items", "metric",
"by_shots": {"0": {"acc": .., "acc_norm": .., "ppl": .., "chance": .., "clean_items": .., "clean_acc": .., ...}}}},
"table": {"header": [..], "rows": [[..]]}} — the printed table, for reports.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from blending.atomic import write_text_atomic
from blending.user_errors import reports_bad_input
from trainer.inference import LoadedModel, load_model

DEFAULT_TASKS = ("lambada", "piqa", "hellaswag", "winogrande", "boolq")
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class Request:
    """One (context, continuation) to score: its tokens, lm-evaluation-harness's way."""

    context: list[int]
    continuation: list[int]


def encode_pair(tokenizer, context: str, continuation: str) -> Request:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation).ids
    context_ids = tokenizer.encode(context).ids
    return Request(context_ids, whole[len(context_ids):])


def score(model: LoadedModel, requests: Sequence[Request], batch_size: int = 32,
          desc: str | None = None) -> list[tuple[float, bool]]:
    """(sum of log-probabilities of the continuation, whether greedy decoding gives it) per request; a
    progress bar on a terminal."""
    from tqdm import tqdm

    limit = model.seq_length
    windows = []
    for r in requests:
        if not 0 < len(r.continuation) <= limit:
            raise ValueError(f"a continuation of {len(r.continuation)} tokens cannot be scored in {limit} positions")
        tokens = (r.context + r.continuation)[-(limit + 1):]  # left truncation
        windows.append((tokens[:-1], r.continuation))
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(windows)
    progress = tqdm(total=len(windows), desc=desc, unit="req", disable=None, leave=False, mininterval=1.0)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = len(windows[batch[0]][0])
        inputs = torch.zeros(len(batch), width, dtype=torch.int64)
        for row, i in enumerate(batch):
            inputs[row, : len(windows[i][0])] = torch.tensor(windows[i][0])
        log_probs = model.log_probs(inputs)
        for row, i in enumerate(batch):
            tokens, continuation = windows[i]
            end = len(tokens)
            span = log_probs[row, end - len(continuation): end]
            target = torch.tensor(continuation)
            picked = span.gather(1, target[:, None]).squeeze(1)
            results[i] = (float(picked.sum()), bool((span.argmax(dim=-1) == target).all()))
        progress.update(len(batch))
    progress.close()
    return results


def eval_split(items) -> str:
    splits = {item.split for item in items if item.gold is not None}
    for split in ("test", "validation"):
        if split in splits:
            return split
    return sorted(splits)[0] if splits else "test"


def shot_pool(items, split: str) -> list:
    """Where k-shot examples come from: train, else another split than the evaluated one, else the same."""
    solved = [item for item in items if item.gold is not None]
    for candidates in ([i for i in solved if i.split == "train"], [i for i in solved if i.split != split]):
        if candidates:
            return candidates
    return [i for i in solved if i.split == split]


def draw_shots(pool: list, item, k: int, seed: int) -> list:
    """k examples for `item`, the same for the same (seed, task, item), never the item itself."""
    if k == 0:
        return []
    rng = random.Random(f"{seed}\0{item.task}\0{item.split}\0{item.index}")
    others = [p for p in pool if (p.split, p.index) != (item.split, item.index) and p.context != item.context]
    return rng.sample(others, min(k, len(others)))


def prompt(item, shots: list) -> str:
    examples = [shot.context + shot.choices[shot.gold] for shot in shots]
    return FEWSHOT_DELIMITER.join([*examples, item.context])


def evaluate_task(model: LoadedModel, name: str, items: list, shots: int, seed: int = 1234, limit: int | None = None,
                  contaminated: set | None = None, batch_size: int = 32) -> tuple[dict, list[dict]]:
    """Metrics of one task at one shot count, and one record per item (its choices' log-likelihoods)."""
    split = eval_split(items)
    evaluated = [i for i in items if i.split == split and i.gold is not None][: limit or None]
    pool = shot_pool(items, split)
    requests, owners, kept, too_long = [], [], [], 0
    for item in evaluated:
        context = prompt(item, draw_shots(pool, item, shots, seed))
        pairs = [encode_pair(model.tokenizer, context, choice) for choice in item.choices]
        if any(len(p.continuation) > model.seq_length for p in pairs):
            too_long += 1  # a choice longer than the model's context cannot be scored
            continue
        requests += pairs
        owners += [len(kept)] * len(pairs)
        kept.append(item)
    evaluated = kept
    scored = score(model, requests, batch_size, desc=f"{name} {shots}-shot")
    records = [{"task": name, "split": split, "index": item.index, "loglikelihoods": [], "greedy": [],
                "gold": item.gold} for item in evaluated]
    for owner, (logprob, greedy) in zip(owners, scored):
        records[owner]["loglikelihoods"].append(logprob)
        records[owner]["greedy"].append(greedy)
    for record, item in zip(records, evaluated):
        lls = record["loglikelihoods"]
        if name == "lambada":
            record["correct"] = record["greedy"][item.gold]
        else:
            record["correct"] = max(range(len(lls)), key=lls.__getitem__) == item.gold
            per_char = [ll / max(len(c), 1) for ll, c in zip(lls, item.choices)]
            record["correct_norm"] = max(range(len(lls)), key=per_char.__getitem__) == item.gold
    metrics = _metrics(name, records)
    if contaminated is not None:
        clean = [r for r in records if (name, r["split"], r["index"]) not in contaminated]
        metrics["clean_items"] = len(clean)
        for key, value in _metrics(name, clean).items():
            metrics[f"clean_{key}"] = value if clean else None
    metrics["items"] = len(records)
    metrics["skipped_too_long"] = too_long
    # what guessing scores: 1 / choices per item (LAMBADA has no choices to guess among)
    metrics["chance"] = 0.0 if name == "lambada" else sum(1 / len(i.choices) for i in evaluated) / max(len(evaluated), 1)
    return metrics, records


def _metrics(name: str, records: list[dict]) -> dict:
    n = max(len(records), 1)
    out = {"acc": sum(r["correct"] for r in records) / n}
    if name == "lambada":
        out["ppl"] = math.exp(-sum(r["loglikelihoods"][r["gold"]] for r in records) / n) if records else None
    else:
        out["acc_norm"] = sum(r["correct_norm"] for r in records) / n
    return out


def read_contaminated(path: str | Path) -> set[tuple[str, str, int]]:
    text = Path(path).read_text()
    try:
        data = json.loads(text)
        # a JSON list, {"items": [...]}, or a JSONL file of one line
        rows = data if isinstance(data, list) else data["items"] if "items" in data else [data]
    except json.JSONDecodeError:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {(r["task"], r["split"], int(r["index"])) for r in rows}


def main_metric(name: str) -> str:
    return "acc_norm" if name == "hellaswag" else "acc"


def table(result: dict) -> dict:
    """{"header", "rows"}: task | metric | items | one column per shot count (| clean subset), the layout of
    the paper's tables; accuracies in %. Stored in eval.json, so a report shows it without this module."""
    shots = result["shots"]
    header = ["Task", "Metric", "Items", "Chance", *[f"{k}-shot" for k in shots]]
    with_clean = any("clean_items" in m for t in result["tasks"].values() for m in t["by_shots"].values())
    if with_clean:
        header += ["Clean items", *[f"{k}-shot clean" for k in shots]]
    rows = []
    for name, task in result["tasks"].items():
        metric, by = task["metric"], task["by_shots"]
        first = by[str(shots[0])]
        row = [name, metric, str(task["items"]), _pct(first.get("chance")), *[_pct(by[str(k)].get(metric)) for k in shots]]
        if with_clean:
            row += [str(first.get("clean_items")), *[_pct(by[str(k)].get(f"clean_{metric}")) for k in shots]]
        rows.append(row)
        if name == "lambada":
            row = [name, "ppl", "", "", *[_number(by[str(k)].get("ppl")) for k in shots]]
            if with_clean:
                row += ["", *[_number(by[str(k)].get("clean_ppl")) for k in shots]]
            rows.append(row)
    return {"header": header, "rows": rows}


def format_table(table: dict) -> str:
    """table()'s output as aligned text."""
    header, rows = table["header"], table["rows"]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    line = lambda r: " | ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *map(line, rows)])


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}" if value >= 1e6 else f"{value:.2f}"


def evaluate(model: LoadedModel, tasks: Sequence[str], shots: Sequence[int], *, limit: int | None = None,
             seed: int = 1234, contaminated: set | None = None, task_files: dict | None = None,
             batch_size: int = 32, log_items: Path | None = None, log=print) -> dict:
    from blending.evaltasks import load_task

    state = model.full.trainer_state
    result = {"checkpoint": str(model.checkpoint), "step": state.step, "tokens": state.consumed_tokens,
              "shots": list(shots), "limit": limit, "seed": seed, "tasks": {}}
    sink = log_items.open("w") if log_items else None
    try:
        for name in tasks:
            items = load_task(name, (task_files or {}).get(name))
            entry = {"metric": main_metric(name), "by_shots": {}}
            for k in shots:
                started = time.perf_counter()
                metrics, records = evaluate_task(model, name, items, k, seed, limit, contaminated, batch_size)
                metrics["seconds"] = round(time.perf_counter() - started, 3)
                entry["split"], entry["items"] = records[0]["split"] if records else None, len(records)
                entry["by_shots"][str(k)] = metrics
                log(f"{name} {k}-shot: {entry['metric']} {_pct(metrics.get(entry['metric']))} on {len(records)} items "
                    f"({metrics['seconds']:.1f} s)")
                if sink:
                    for record in records:
                        sink.write(json.dumps({**record, "shots": k}) + "\n")
            result["tasks"][name] = entry
    finally:
        if sink:
            sink.close()
    result["table"] = table(result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest)")
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                        help="comma-separated tasks of blending.evaltasks (default: %(default)s)")
    parser.add_argument("--shots", default="0", help="comma-separated shot counts, one table column each (e.g. 0,1,5)")
    parser.add_argument("--limit", type=int, help="evaluate the first N items of each task only")
    parser.add_argument("--task-file", action="append", default=[], metavar="NAME=PATH",
                        help="read task NAME from PATH (same format as the shipped file)")
    parser.add_argument("--contaminated", help="items the decontamination stage found: adds clean-subset accuracy")
    parser.add_argument("--seed", type=int, default=1234, help="draws the k-shot examples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="float64 for exact comparisons with another implementation")
    parser.add_argument("--out", help="eval.json to write (default: eval.json in the checkpoint's run folder)")
    parser.add_argument("--log-items", help="also write every item's choice log-likelihoods to this JSONL file")
    return parser.parse_args(argv)


def default_out(checkpoint: Path) -> Path:
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run_dir / "eval.json"


@reports_bad_input("python -m trainer.evaluate")
def main(argv: list[str] | None = None) -> int:
    from trainer.checkpoint import CheckpointError

    args = parse_args(argv)
    try:
        shots = [int(k) for k in args.shots.split(",")]
        task_files = dict(entry.split("=", 1) for entry in args.task_file)
    except ValueError:
        print("error: --shots takes integers, --task-file NAME=PATH", file=sys.stderr)
        return 2
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        model = load_model(args.checkpoint, dtype=getattr(torch, args.dtype))
        contaminated = read_contaminated(args.contaminated) if args.contaminated else None
        result = evaluate(model, tasks, shots, limit=args.limit, seed=args.seed, contaminated=contaminated,
                          task_files=task_files, batch_size=args.batch_size,
                          log_items=Path(args.log_items) if args.log_items else None)
    except (CheckpointError, KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out(model.checkpoint)
    write_text_atomic(out, json.dumps(result, indent=1))
    print(f"\n{model.checkpoint} (step {result['step']}, {result['tokens']:,} tokens); accuracy in %\n")
    print(format_table(result["table"]))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
