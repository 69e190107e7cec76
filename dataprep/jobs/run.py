"""spark-submit dataprep/jobs/run.py [options]: the whole pipeline under spark-submit (options: python -m dataprep run --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
