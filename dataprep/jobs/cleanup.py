"""spark-submit dataprep/jobs/cleanup.py [options]: the cleanup stage under spark-submit (options: python -m dataprep cleanup --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["cleanup", *sys.argv[1:]]))
