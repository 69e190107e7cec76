"""python -m samplecrawl --out DIR --records N --files F --seed S [--material DIR] [--workers W]"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .build import build_sample_crawl
from .material import DEFAULT_MATERIAL, load_material


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samplecrawl", description=__doc__)
    parser.add_argument("--out", required=True, help="output folder (WARC files and truth.json)")
    parser.add_argument("--records", type=int, required=True, help="exact number of WARC records in all")
    parser.add_argument("--files", type=int, default=1, help="number of .warc.gz files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--material",
        default=str(DEFAULT_MATERIAL),
        help="folder of real pages and text (layout of the shared data folder); default: bundled",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes writing files (output is the same)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    material = load_material(args.material)
    loaded = time.perf_counter()
    truth = build_sample_crawl(
        args.out,
        args.records,
        args.files,
        args.seed,
        material=material,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=True,
    )
    done = time.perf_counter()
    summary = {
        "out": args.out,
        "records": truth["record_count"],
        "files": len(truth["files"]),
        "bytes": sum(f["bytes"] for f in truth["files"]),
        "material_sha256": truth["material"]["sha256"],
        "pages_by_category": truth["counts"]["pages_by_category"],
        "material_load_s": round(loaded - started, 2),
        "build_s": round(done - loaded, 2),
        "records_per_s": round(truth["record_count"] / (done - loaded), 1),
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
