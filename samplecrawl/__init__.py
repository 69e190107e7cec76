"""Sample-crawl builder: Common-Crawl-like WARC files made from real pages and real text, with a
truth.json that says what every record is and what the pipeline should do with it.

    python -m samplecrawl --out DIR --records N --files F --seed S [--material DIR]

Pages are real page templates (the navigation, footers and ads of real pages, article taken out) filled
with real paragraphs (books, Wikipedia, speeches, news bodies; real non-English page text), mixed in the
proportions of `CrawlMix`. The material is a folder (`--material`, default the bundled copy in
tests/fixtures/samplecrawl); the same seed and material give byte-identical files. truth.py documents
truth.json.
"""

from .build import build_sample_crawl
from .config import CATEGORY_OUTCOMES, CrawlMix, SampleCrawlConfig, __version__
from .material import DEFAULT_MATERIAL, Material, load_material
from .truth import content_text, load_truth

__all__ = [
    "CATEGORY_OUTCOMES",
    "DEFAULT_MATERIAL",
    "CrawlMix",
    "Material",
    "SampleCrawlConfig",
    "__version__",
    "build_sample_crawl",
    "content_text",
    "load_material",
    "load_truth",
]
