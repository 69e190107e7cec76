"""Regenerate the golden stage folders, tests/fixtures/stages_before/ (see the README.md there).

    python -m tests.regenerate_golden           # rewrite them from the stages as they are now
    python -m tests.regenerate_golden --check   # only compare: exit 1 and name the files that differ

The folders are what tests/test_stage.py::test_stages_write_byte_identical_folders_to_before compares
the stages' output with, byte for byte. Rewrite them only when a change of the stages' output is meant
(and say so in the commit); `--check` is the test's comparison without pytest.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tests.helpers import GOLDEN_STAGES, golden_files, write_golden_stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.regenerate_golden", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed folders, write nothing")
    parser.add_argument("--out", type=Path, default=GOLDEN_STAGES, help="where the folders go (default: %(default)s)")
    args = parser.parse_args(argv)

    from blending.spark_session import get_spark

    spark = get_spark("local[2]", app_name="regenerate-golden", conf={"spark.ui.showConsoleProgress": "false"})
    differ = []
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        for name in write_golden_stages(spark, Path(tmp)):
            now, before = golden_files(Path(tmp) / name), golden_files(args.out / name) if (args.out / name).is_dir() else {}
            changed = sorted(k for k in now.keys() | before.keys() if now.get(k) != before.get(k))
            differ += [f"{name}/{k}" for k in changed]
            if args.check:
                continue
            shutil.rmtree(args.out / name, ignore_errors=True)
            for relative, data in now.items():
                (args.out / name / relative).parent.mkdir(parents=True, exist_ok=True)
                (args.out / name / relative).write_bytes(data)
    spark.stop()
    verb = "differ" if args.check else "rewritten"
    print(f"{len(differ)} files {verb}" + "".join(f"\n  {f}" for f in differ))
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
