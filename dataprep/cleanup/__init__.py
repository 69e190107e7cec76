"""Cleanup: ftfy and the paper's heuristics, on the documents of every source."""
