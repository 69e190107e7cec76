"""What verifying a blend before training costs: the demo's shards and a 1 GB shard set.

Training never reads a shard whose sha256 this machine has not checked since the file last changed
(blending/verified.py). The baseline is what hashing at every start costs (`--verify`); ours is a start
after the first, which finds every file in the machine's record. Times are medians of 5 runs, after one
first verification that hashes everything; `ratio` = baseline seconds / ours.

    .venv/bin/python bench/shard_verify.py [--gigabytes 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blending.indexed import IndexedDatasetWriter  # noqa: E402
from blending.manifest import load_manifest, manifest_dict, write_manifest  # noqa: E402
from blending.tokenizer import EOD_TOKEN, train_bpe  # noqa: E402
from blending.verified import verify_manifest  # noqa: E402

README_FIGURES = ("ratio", "gb_hashed_per_s", "recorded_start_s_per_gb", "demo_first_s")
SHARD_TOKENS = 64 << 20  # 128 MB of uint16 tokens per shard


def random_blend(out: Path, gigabytes: float) -> Path:
    """A manifest of shards of random tokens (uint16), `gigabytes` of .bin in all, and a small tokenizer."""
    tokenizer = train_bpe([(REPO / "README.md").read_text()] * 3, vocab_size=300, eod_token=EOD_TOKEN)
    tokenizer.save(str(out / "tokenizer.json"))
    rng = np.random.default_rng(0)
    shards, left = [], int(gigabytes * 1e9 / 2)
    while left > 0:
        tokens = rng.integers(0, 300, min(SHARD_TOKENS, left), dtype=np.uint16)
        lengths = np.full(len(tokens) // 4096, 4096, dtype=np.int64)
        lengths[-1] += len(tokens) - int(lengths.sum())
        prefix = f"random/train_{len(shards):05d}"
        (out / "random").mkdir(exist_ok=True)
        writer = IndexedDatasetWriter(out / prefix, np.dtype(np.uint16))
        writer.add_documents(tokens, lengths)
        written = writer.close()
        shards.append({"prefix": prefix, "documents": written.documents, "tokens": written.tokens,
                       "bin": {"bytes": written.bin.bytes, "sha256": written.bin.sha256},
                       "idx": {"bytes": written.idx.bytes, "sha256": written.idx.sha256}})
        left -= len(tokens)
    import hashlib

    tok = {"file": "tokenizer.json", "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
           "vocab_size": tokenizer.get_vocab_size(), "eod_id": tokenizer.token_to_id(EOD_TOKEN)}
    return write_manifest(out, manifest_dict(tok, {"random": {"weight": 1.0, "train": shards, "valid": []}}))


def timed(manifest: Path, record: Path, force: bool) -> tuple[float, int]:
    started = time.perf_counter()
    done = verify_manifest(load_manifest(manifest), force=force, record=record)
    return time.perf_counter() - started, done.hashed_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--demo", default=str(REPO / "out" / "demo" / "shards" / "manifest.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.gigabytes = 0.01
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if Path(args.demo).is_file():
            figures["demo_first_s"] = round(timed(Path(args.demo), scratch / "demo-record.json", False)[0], 4)
            figures["demo_recorded_s"] = round(timed(Path(args.demo), scratch / "demo-record.json", False)[0], 4)
        (scratch / "blend").mkdir()
        manifest = random_blend(scratch / "blend", args.gigabytes)
        record = scratch / "record.json"
        first, hashed = timed(manifest, record, False)
        baseline = [timed(manifest, record, True)[0] for _ in range(5)]
        ours = [timed(manifest, record, False)[0] for _ in range(5)]
        base, mine = statistics.median(baseline), statistics.median(ours)
        gigabytes = hashed / 1e9
        print(f"{gigabytes:.2f} GB: first verification {first:.2f} s; every start hashing again {base:.2f} s "
              f"(median of 5); a start that finds the files recorded {mine * 1000:.1f} ms", file=sys.stderr)
        figures.update({"ratio": round(base / mine, 1), "gb_hashed_per_s": round(gigabytes / base, 3),
                        "hash_every_start_s": round(base, 3), "recorded_start_s": round(mine, 4),
                        "recorded_start_s_per_gb": round(mine / gigabytes, 4), "first_verification_s": round(first, 3),
                        "gigabytes": round(gigabytes, 3)})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
