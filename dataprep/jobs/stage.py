"""spark-submit dataprep/jobs/stage.py STAGE [options]: one stage under spark-submit (options: python -m dataprep STAGE --help)."""

import sys

from dataprep.__main__ import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
