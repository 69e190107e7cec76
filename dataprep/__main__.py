"""`python -m dataprep <stage> ...`: run one stage of the pipeline (spark-submit: dataprep/jobs/<stage>.py).

Each stage module provides HELP, add_arguments(parser) and main(args) -> exit code; adding a stage
is one line in STAGES.
"""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = {
    "extract": "dataprep.extract.stage",
    "ingest": "dataprep.ingest.stage",
    "cleanup": "dataprep.cleanup.stage",
    "train-classifier": "dataprep.quality.train",
}


def _usage() -> str:
    lines = ["usage: python -m dataprep <stage> [options]   (python -m dataprep <stage> --help)", "", "stages:"]
    for name, module in STAGES.items():
        lines.append(f"  {name:<10} {importlib.import_module(module).HELP}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in STAGES:
        print(_usage(), file=sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from dataprep.file_stage import BadInputFilesError
    from dataprep.inputs import InputError
    from dataprep.stage_output import IncompleteInputError, OutputExistsError

    stage = importlib.import_module(STAGES[argv[0]])
    parser = argparse.ArgumentParser(prog=f"python -m dataprep {argv[0]}", description=stage.HELP)
    stage.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return stage.main(args)
    except (BadInputFilesError, OutputExistsError, IncompleteInputError, FileNotFoundError, InputError) as e:
        print(f"dataprep {argv[0]}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
