"""Cut a checkpoint for another tensor x pipeline layout; the data-parallel degree is chosen when resuming.

    python -m trainer.reshard --checkpoint RUN[/checkpoints/step_N] --tp 1 --pp 2 --out NEW_RUN
    torchrun --nproc-per-node 4 -m trainer.train ... --set parallel.tensor=1 --set parallel.pipeline=2 \\
        --out NEW_RUN --resume                          # TP1 x PP2 x DP2, continuing step N exactly

Every tensor and its Adam moments are joined across tensor-parallel ranks along its partition dimension
(ZeRO-1 data-parallel slices joined first), then split for the new degree; the vocabulary padding is
redone for it. The new checkpoint keeps the step, consumed samples and tokens (the data position), the
schedules' values and the tokenizer; it stores the Adam moments per layer file, so the resumed launch
puts them into its own ZeRO-1 partitioning whatever its data-parallel size (trainer.checkpoint.live).
Dropout RNG streams are per rank and cannot follow a layout change: they are seeded afresh.

This is our own split/join rather than DeepSpeed's universal checkpoint: the one-process layout runs
without ZeRO, which DeepSpeed's universal loader does not support, and the model already defines each
tensor's partition dimension (trainer.checkpoint.layout), so the conversion is exact and small.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from blending.user_errors import reports_bad_input
from trainer.checkpoint import CheckpointError, resolve_checkpoint
from trainer.checkpoint.full import read_model, write_layout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m trainer.reshard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest)")
    parser.add_argument("--tp", type=int, required=True, help="tensor-parallel degree of the new checkpoint")
    parser.add_argument("--pp", type=int, required=True, help="pipeline-parallel degree of the new checkpoint")
    parser.add_argument("--out", required=True, help="new run folder; resume it with trainer.train --out OUT --resume")
    return parser.parse_args(argv)


def reshard(checkpoint: str | Path, tp: int, pp: int, out: str | Path) -> Path:
    source = resolve_checkpoint(checkpoint)
    full = read_model(source, with_optimizer=True)
    target = Path(out) / "checkpoints" / source.name
    if target.resolve() == source.resolve():
        raise CheckpointError("--out must be another run folder than the checkpoint's")
    write_layout(full, target, tp, pp, source=source)
    return target


@reports_bad_input("python -m trainer.reshard")
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        target = reshard(args.checkpoint, args.tp, args.pp, args.out)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {target} (TP{args.tp} x PP{args.pp}, any DP) in {time.perf_counter() - started:.1f} s; "
          f"continue with: trainer.train --set parallel.tensor={args.tp} --set parallel.pipeline={args.pp} "
          f"--out {args.out} --resume (with the run's other options)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
