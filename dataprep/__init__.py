"""Curation pipeline: Common Crawl WARC and already-extracted sources to clean, accounted documents."""

__version__ = "0.1.0"
