"""spark-submit dataprep/jobs/dedup.py [options]: the dedup stage under spark-submit (options: python -m dataprep dedup --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["dedup", *sys.argv[1:]]))
