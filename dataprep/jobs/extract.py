"""spark-submit dataprep/jobs/extract.py [options]: the extract stage under spark-submit (options: python -m dataprep extract --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
