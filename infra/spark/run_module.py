"""Run `python -m MODULE ARGS...` under spark-submit, which takes a file rather than a module.

    spark-submit --master spark://HOST:7077 infra/spark/run_module.py dataprep extract --input ... --output ...

The module is imported from the driver's PYTHONPATH or environment (the repository root in the Docker
image; the packed virtual environment on a cluster, see infra/README.md).
"""

import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: spark-submit [spark options] infra/spark/run_module.py MODULE [ARGS...]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]  # argv[0] becomes the module's file, as with python -m
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
