"""Ingest: already-extracted sources (JSONL, Parquet, plain text) -> document rows, like extract's."""
