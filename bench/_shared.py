"""Where the benchmarks find the shared data folder, and what a --smoke run reads on a clone without it.

The folder is $MTNLG_SHARED_DATA, by default ../shared/data beside the repository. A clone without it
(CI's fresh clone) still runs every benchmark's --smoke: `data_folder(smoke=True)` then gives a
temporary folder of the same layout made of the small copies in tests/fixtures (tests/fixtures/SOURCES.md),
removed when the process exits. Figures are never measured on it: a real run reads the shared folder.
"""

from __future__ import annotations

import atexit
import gzip
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("MTNLG_SHARED_DATA") or ROOT.parent / "shared" / "data")

# path in the shared layout <- fixture; a gzipped fixture whose target has no .gz is stored unpacked
STAND_IN_FILES = {
    "prose/wikitext-2/valid.txt": "samplecrawl/prose/wikitext-2/valid.txt.gz",
    "prose/wikitext-2/test.txt": "blending/wikitext2_valid_head.txt",
    "prose/gutenberg/84-0_frankenstein.txt": "prose/frankenstein_head.txt",
    "prose/gutenberg/1342-0_pride_and_prejudice.txt": "blending/pride_and_prejudice_head.txt",
    "prose/gutenberg/1661-8_sherlock_holmes.txt": "samplecrawl/prose/gutenberg/1661-8_sherlock_holmes.txt.gz",
    "prose/tinyshakespeare/input.txt": "blending/tinyshakespeare_head.txt",
    "prose/nltk_data/inaugural.zip": "samplecrawl/prose/nltk_data/inaugural.zip",
    "html/aeb_ground-truth.json": "samplecrawl/html/aeb_ground-truth.json.gz",
    "html/trafilatura_evaldata_subset.json": "html/trafilatura_evaldata_subset.json",
    "warc/dolma_cc_en_head-0091.jsonl.gz": "text/dolma_cc_en_head-0091.jsonl.gz",
    "warc/resiliparse_warcfile.warc.gz": "samplecrawl/warc/resiliparse_warcfile.warc.gz",
    "warc/resiliparse_clueweb-quirk.warc.gz": "samplecrawl/warc/resiliparse_clueweb-quirk.warc.gz",
}
# folder in the shared layout <- fixture folder, and whether its .gz files are stored unpacked
STAND_IN_FOLDERS = {
    "html/aeb_html": ("samplecrawl/html/aeb_html", False),
    "html/trafilatura_eval": ("samplecrawl/html/trafilatura_eval", True),
}


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".gz" and target.suffix != ".gz":
        target.write_bytes(gzip.decompress(source.read_bytes()))
    else:
        shutil.copyfile(source, target)


def stand_in(fixtures: Path = FIXTURES) -> Path:
    """A temporary folder with the shared layout, made of the fixtures' small copies (removed at exit)."""
    folder = Path(tempfile.mkdtemp(prefix="shared-stand-in-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for target, source in STAND_IN_FILES.items():
        _place(fixtures / source, folder / target)
    for target, (source, unpack) in STAND_IN_FOLDERS.items():
        for path in sorted((fixtures / source).iterdir()):
            name = path.name.removesuffix(".gz") if unpack else path.name
            _place(path, folder / target / name)
    _keep_truth_of_present_pages(folder / "html")
    return folder


def _keep_truth_of_present_pages(html: Path) -> None:
    """The ground truth cut to the pages the fixtures hold (21 of its 181)."""
    truth = json.loads((html / "aeb_ground-truth.json").read_text(encoding="utf-8"))
    present = {p.name.removesuffix(".html.gz") for p in (html / "aeb_html").iterdir()}
    kept = {page: entry for page, entry in truth.items() if page in present}
    (html / "aeb_ground-truth.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")


def data_folder(smoke: bool) -> Path:
    """The shared data folder; for a --smoke run where it is missing, the fixtures' stand-in."""
    if SHARED.is_dir() or not smoke:
        return SHARED
    print(f"{SHARED} not found: smoke run on the small copies in {FIXTURES.relative_to(ROOT)}", file=sys.stderr)
    return stand_in()
