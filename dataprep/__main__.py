"""`python -m dataprep run ...` runs the pipeline, `python -m dataprep <stage> ...` one stage of it,
`python -m dataprep estimate ...` projects a run's cost from a sample of its input,
`python -m dataprep train-classifier ...` trains the quality stage's classifier.

Under spark-submit: dataprep/jobs/run.py (the pipeline) and dataprep/jobs/stage.py <stage> (one stage).
The stages are dataprep/pipeline.py's STAGES; each one's options come from its declaration.
"""

from __future__ import annotations

import sys

from dataprep import pipeline  # STAGES read on each call: a list changed after import counts


def _usage() -> str:
    lines = ["usage: python -m dataprep run [options]       the whole pipeline (python -m dataprep run --help)",
             "       python -m dataprep <stage> [options]   one stage (python -m dataprep <stage> --help)",
             "       python -m dataprep estimate [options]  the pipeline's cost, from a sample of its input (--help)",
             "       python -m dataprep train-classifier [options]   the quality classifier (--help)",
             "", "stages, in pipeline order:"]
    lines += [f"  {stage.name:<14} {stage.help}" for stage in pipeline.all_stages()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "run":
        from dataprep.cli import run_pipeline_command

        return run_pipeline_command(argv[1:])
    if argv and argv[0] == "estimate":
        from dataprep.estimate.command import estimate_command

        return estimate_command(argv[1:])
    if argv and argv[0] == "train-classifier":
        from dataprep.quality.train import train_command

        return train_command(argv[1:])
    stages = {stage.name: stage for stage in pipeline.all_stages()}
    if not argv or argv[0] not in stages:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(_usage(), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    from dataprep.cli import run_stage_command

    return run_stage_command(stages[argv[0]], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
