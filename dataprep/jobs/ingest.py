"""spark-submit dataprep/jobs/ingest.py [options]: the ingest stage under spark-submit (options: python -m dataprep ingest --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
