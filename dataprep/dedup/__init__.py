"""Dedup: exact (normalised URL, then normalised text) and fuzzy (MinHash LSH, exact Jaccard
verification, connected components) with one representative per group, chosen by source priority,
then the earliest origin. Plain per-document functions (normalize, shingles, minhash, verify, ranking)
and the Spark dataflow that wires them (keys, frames, components)."""
