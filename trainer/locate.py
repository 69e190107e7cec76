"""python -m trainer.locate --run DIR --step S: the documents training step S learnt from.

Step S (1-based, as the log and metrics.csv count) trains on samples [consumed, consumed + G) of the
run's train stream, consumed and G from RUN/metrics.csv (or, for steps it does not list, the run's
batch schedule replayed from RUN/config.json). The stream is rebuilt from RUN/data_stream.json with
blending's reader, the code the trainer itself reads it with; each sample is reported as the pieces of
documents it is made of: doc_id, source, shard, document number and token range (end exclusive).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blending.terminal import printable_json
from blending.typed_config import read_mapping
from blending.user_errors import reports_bad_input
from trainer import schedules
from trainer.config import from_dict
from trainer.metrics import read_csv


def step_samples(run_dir: str | Path, step: int) -> range:
    """The indices, in the train stream, of the samples of step `step`."""
    if step < 1:
        raise ValueError(f"steps count from 1, not {step}")
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    rows = {int(r["step"]): r for r in read_csv(metrics)} if metrics.is_file() else {}
    if step in rows:
        after = int(rows[step]["samples"])
        return range(after - int(rows[step]["global_batch"]), after)
    config = run_dir / "config.json"
    cfg = from_dict(read_mapping(config), where=str(config))
    known = max((s for s in rows if s < step), default=0)
    consumed = int(rows[known]["samples"]) if known else 0
    for index in range(known, step - 1):
        consumed += schedules.plan_step(index, consumed, cfg, 1).global_batch
    return range(consumed, consumed + schedules.plan_step(step - 1, consumed, cfg, 1).global_batch)


def locate_step(run_dir: str | Path, step: int, manifest_path: str | Path | None = None,
                with_text: bool = False) -> dict:
    """{"step", "samples": [first, end), "batch": [{"sample": i, "documents": [...]}, ...]}."""
    from blending.locate import Describer, LocateError, locate_samples
    from blending.reader import DataStream, load_manifest

    stream = DataStream.load(run_dir)
    manifest = load_manifest(manifest_path or stream.manifest)
    samples = step_samples(run_dir, step)
    if samples.stop > stream.train_samples:
        raise LocateError(f"step {step} needs samples up to {samples.stop}; the run's stream holds {stream.train_samples}")
    train, _ = stream.datasets(manifest, cache_dir=Path(run_dir) / "index-cache")
    batch = locate_samples(manifest, train, samples, Describer(manifest, with_text=with_text))
    return {"step": step, "samples": [samples.start, samples.stop], "batch": batch}


def format_text(answer: dict) -> str:
    first, end = answer["samples"]
    out = [f"step {answer['step']}: samples {first}-{end - 1} ({end - first} in the global batch)"]
    for item in answer["batch"]:
        pieces = [f"{d['doc_id']} {d['shard']}#{d['doc']} [{d['token_range'][0]}, {d['token_range'][1]})"
                  for d in item["documents"]]
        out.append(f"  {item['sample']:>8}  " + "  ".join(pieces))
    return "\n".join(out)


@reports_bad_input("python -m trainer.locate")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.locate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, metavar="DIR", help="the training run's folder (--out of the run)")
    parser.add_argument("--step", required=True, type=int, metavar="S", help="training step, counted from 1")
    parser.add_argument("--manifest", help="the manifest, if it moved since the run (default: the one the run read)")
    parser.add_argument("--text", action="store_true", help="include each document's text (with --json)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from blending.locate import LocateError
    from blending.reader import ManifestError

    try:
        answer = locate_step(args.run, args.step, args.manifest, with_text=args.text)
    except (LocateError, ManifestError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(printable_json(json.dumps(answer, ensure_ascii=False)) if args.json else format_text(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
