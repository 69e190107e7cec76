"""Sample-crawl builder: Common-Crawl-like WARC files made from real pages and real text, with a
truth.json that says what every record is and what the pipeline should do with it.

    python -m dataprep.samplecrawl --out DIR --records N --files F --seed S [--material DIR]
"""

from .build import build_sample_crawl
from .config import CATEGORY_OUTCOMES, CrawlMix, SampleCrawlConfig
from .material import DEFAULT_MATERIAL, Material, load_material

__all__ = [
    "CATEGORY_OUTCOMES",
    "DEFAULT_MATERIAL",
    "CrawlMix",
    "Material",
    "SampleCrawlConfig",
    "build_sample_crawl",
    "load_material",
]
