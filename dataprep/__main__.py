"""`python -m dataprep <stage> ...`: run one stage of the pipeline (spark-submit: dataprep/jobs/<stage>.py).

The stages are dataprep/pipeline.py's STAGES; each one's options come from its declaration.
"""

from __future__ import annotations

import sys

from dataprep.pipeline import STAGES, stage_class_at


def _usage() -> str:
    lines = ["usage: python -m dataprep <stage> [options]   (python -m dataprep <stage> --help)", "", "stages:"]
    for entry in STAGES:
        stage = stage_class_at(entry)
        lines.append(f"  {stage.name:<14} {stage.help}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    stages = {stage_class_at(entry).name: stage_class_at(entry) for entry in STAGES}
    if not argv or argv[0] not in stages:
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print(_usage(), file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    from dataprep.cli import run_stage_command

    return run_stage_command(stages[argv[0]], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
