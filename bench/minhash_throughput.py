"""MinHash throughput: dedup's batch signatures against datasketch's `MinHash.bulk` on the same documents.

Documents: real text from ../shared/data (Wikipedia articles of wikitext-2, Project Gutenberg books and
Shakespeare cut into 1,000-6,000-character pieces at paragraph ends, CCNet's Common Crawl documents).
Both sides start from the text and end with 260-value signatures, in the same process, alternating,
`--repeats` times; CPU seconds, medians quoted.
  - ours:       dataprep.dedup.minhash.signatures over batches of `--batch` documents (shingling included)
  - datasketch: per document, the words and 5-word shingles, then `MinHash.bulk(..., num_perm=260,
                seed=1, hashfunc=shingle_hash)`: the same shingles, seed, permutation scheme (affine32)
                and hash function, so the signatures are equal (checked) and the ratio is ours alone.
ratio = our signatures per CPU second over datasketch's (goal >= 4).

For scale, two more datasketch runs whose signatures differ from ours, with other hash functions over
the shingle's string: its default (sha1) and xxh3-64 (the cheapest per-shingle hash at hand); their
ratios are printed too. The last line printed is one JSON object of the figures.

    python bench/minhash_throughput.py [--docs 3000] [--repeats 5] [--batch 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import xxhash
from _shared import data_folder
from datasketch import MinHash

from dataprep.config import DedupConfig
from dataprep.dedup.minhash import signatures
from dataprep.dedup.shingles import shingle_hash, words

README_FIGURES = ("ratio", "ratio_vs_datasketch_sha1", "ratio_vs_datasketch_xxh3_string", "ours_signatures_per_cpu_s")


def pieces(text: str, rng: np.random.Generator) -> list[str]:
    """The text cut at paragraph ends into pieces of 1,000 to 6,000 characters."""
    out, current, target = [], [], rng.integers(1000, 6000)
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        current.append(paragraph)
        if sum(map(len, current)) >= target:
            out.append("\n\n".join(current))
            current, target = [], rng.integers(1000, 6000)
    return out


def real_documents(shared: Path, limit: int) -> list[str]:
    rng = np.random.default_rng(0)
    docs = []
    for name in ("valid.txt", "test.txt"):
        text = (shared / "prose" / "wikitext-2" / name).read_text(encoding="utf-8")
        docs += [a for a in text.split("\n = ") if len(a) > 500 and not a.startswith(" =")]
    for path in sorted((shared / "warc").glob("dolma_cc_en_head-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs += [json.loads(line)["text"] for line in f]
    for path in sorted((shared / "prose" / "gutenberg").glob("*.txt")):
        docs += pieces(path.read_bytes().decode("utf-8", errors="replace"), rng)
    docs += pieces((shared / "prose" / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8"), rng)
    rng.shuffle(docs)
    return docs[:limit]


def ours(docs: list[str], config: DedupConfig, batch: int) -> np.ndarray:
    return np.concatenate([signatures(docs[i : i + batch], config.num_perm, config.seed) for i in range(0, len(docs), batch)])


def word_shingles(text: str) -> list[tuple[str, ...]]:
    w = words(text)
    return list(zip(w, w[1:], w[2:], w[3:], w[4:])) if len(w) >= 5 else ([tuple(w)] if w else [])


def string_shingles(text: str) -> list[bytes]:
    return [" ".join(s).encode("utf-8") for s in word_shingles(text)]


def xxh3_32(data: bytes) -> int:
    return xxhash.xxh3_64_intdigest(data) & 0xFFFFFFFF


def datasketch_same_hash(docs: list[str], config: DedupConfig) -> list[MinHash]:
    return MinHash.bulk((word_shingles(t) for t in docs), num_perm=config.num_perm, seed=config.seed, hashfunc=shingle_hash)


def datasketch_sha1(docs: list[str], config: DedupConfig) -> list[MinHash]:
    return MinHash.bulk((string_shingles(t) for t in docs), num_perm=config.num_perm, seed=config.seed)


def datasketch_xxh3(docs: list[str], config: DedupConfig) -> list[MinHash]:
    return MinHash.bulk((string_shingles(t) for t in docs), num_perm=config.num_perm, seed=config.seed, hashfunc=xxh3_32)


def cpu_seconds(fn, *args) -> tuple[float, object]:
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000, help="documents per batch (a Spark Arrow batch)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one run: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.docs, args.repeats = 100, 1

    config = DedupConfig()
    docs = real_documents(data_folder(args.smoke), args.docs)
    shingle_count = sum(len(word_shingles(t)) for t in docs)
    print(f"{len(docs)} documents, {sum(map(len, docs)) / len(docs):.0f} characters and "
          f"{shingle_count / len(docs):.0f} shingles each on average", file=sys.stderr)

    ours(docs[:50], config, args.batch)  # warm-up: imports, caches
    times: dict[str, list[float]] = {"ours": [], "same_hash": [], "sha1": [], "xxh3": []}
    for _ in range(args.repeats):
        seconds, ours_sig = cpu_seconds(ours, docs, config, args.batch)
        times["ours"].append(seconds)
        seconds, theirs = cpu_seconds(datasketch_same_hash, docs, config)
        times["same_hash"].append(seconds)
        times["sha1"].append(cpu_seconds(datasketch_sha1, docs, config)[0])
        times["xxh3"].append(cpu_seconds(datasketch_xxh3, docs, config)[0])
        if not np.array_equal(ours_sig, np.stack([m.hashvalues for m in theirs])):
            raise RuntimeError("signatures differ from datasketch's")
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: len(docs) / v for k, v in median.items()}
    for name, values in times.items():
        print(f"  {name:<10} {[round(v, 3) for v in values]} CPU s, {rate[name]:,.0f} signatures per CPU s", file=sys.stderr)
    figures = {
        "documents": len(docs),
        "shingles_per_doc": round(shingle_count / len(docs), 1),
        "ours_signatures_per_cpu_s": round(rate["ours"], 1),
        "datasketch_signatures_per_cpu_s": round(rate["same_hash"], 1),
        "ratio": round(rate["ours"] / rate["same_hash"], 3),
        "ratio_vs_datasketch_sha1": round(rate["ours"] / rate["sha1"], 3),
        "ratio_vs_datasketch_xxh3_string": round(rate["ours"] / rate["xxh3"], 3),
        "signatures_equal": True,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
