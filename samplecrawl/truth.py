"""truth.json: what every record of a sample crawl is, and what the pipeline should do with it.

Top level: `version`, `generator`, `seed`, `record_count`, `pages`, `files` (name, bytes, sha256,
records), `material` (sha256 over the material files, their list, templates per language, paragraphs
per pool), `config` (the SampleCrawlConfig, proportions included), `counts` (pages by category, records
by WARC type, records by expected outcome) and `records`, one entry per WARC record in file order:

    file, offset, length, origin   where the record's gzip member is; origin is "<file>@<offset>" as
                                   the document rows' `origin` column writes it
    type, id, url                  WARC-Type, WARC-Record-ID, WARC-Target-URI
    page                           the fetch the record belongs to (request, response, metadata share it)
    expected, stage                the expected outcome and the stage that produces it:
                                   keep (stage null); extract: not_response (requests, metadata, warcinfo,
                                   revisits), not_html, truncated_record; cleanup: non_english,
                                   javascript_notice, too_short; dedup: exact_duplicate, near_duplicate
Response and revisit records add:
    category                       clean, recrawl, near_duplicate, non_english, legacy_charset, short,
                                   javascript_notice, non_html, revisit, truncated
    content_type, payload_bytes    the payload's MIME type and size
    language, charset, charset_declared, template
                                   (HTML) the text's language, the payload's charset, where it is declared
                                   (both, header, meta, none) and the material page the template came from
    content                        source pool, paragraph indexes into it, title, chars and sha1 of the
                                   content text (paragraphs joined by "\n"; near-duplicates: after edits);
                                   `content_text` rebuilds the text from the material
    duplicate_of                   (recrawl, revisit, near_duplicate) page, file, offset, origin and id of
                                   the response it repeats
    edit_rate, edits, jaccard      (near_duplicate) the word edit rate, the edits made, and the Jaccard
                                   similarity of 5-word shingles to the original; at or over the dedup
                                   threshold the page is expected to be removed, else kept
    notice                         (javascript_notice) which of plan.JAVASCRIPT_NOTICES the page shows

English pages that are not marked as copies of each other share less than half their text (Jaccard
over the characters of whole paragraphs, checked when the crawl is planned), so dedup finds no
near-duplicates besides the ones listed. Pages built to be too short are expected to be dropped as too_short; an extractor that finds no text
at all in one (jusText does on a few percent of them) drops it as empty_extraction at extract instead.
"""

from __future__ import annotations

import hashlib
import json

from .config import GENERATOR_NAME, __version__
from .material import Material
from .plan import Page
from .render import content_paragraphs

TRUTH_VERSION = 1


def load_truth(path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def content_text(entry: dict, material: Material, seed: int) -> str:
    """The content text of a response entry (edits of a near-duplicate included), rebuilt from the material;
    its sha1 is the entry's content.sha1."""
    content = entry["content"]
    page = Page(
        index=entry["page"],
        file=0,
        category=entry["category"],
        date=0,
        pool=content["source"],
        paragraphs=tuple(content["paragraphs"]),
        edit_rate=entry.get("edit_rate"),
        leak=entry.get("leak"),
    )
    text = "\n".join(content_paragraphs(page, material, seed)[0])
    if hashlib.sha1(text.encode()).hexdigest() != content["sha1"]:
        raise ValueError(f"record {entry['origin']}: the material does not rebuild its text (other material?)")
    return text


def make_truth(results, pages, material, config, records, files, seed) -> dict:
    all_records = [entry for result in results for entry in result["records"]]
    response_of = {e["page"]: e for e in all_records if e["type"] in ("response", "revisit")}
    for entry in all_records:
        if "duplicate_of" in entry:
            original = response_of[entry["duplicate_of"]["page"]]
            entry["duplicate_of"].update(
                file=original["file"], offset=original["offset"], origin=original["origin"], id=original["id"]
            )
    if len(all_records) != records:
        raise RuntimeError(f"wrote {len(all_records)} records, planned {records}")
    by_category: dict[str, int] = {}
    for page in pages:
        by_category[page.category] = by_category.get(page.category, 0) + 1
    by_type: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    for entry in all_records:
        by_type[entry["type"]] = by_type.get(entry["type"], 0) + 1
        by_outcome[entry["expected"]] = by_outcome.get(entry["expected"], 0) + 1
    return {
        "version": TRUTH_VERSION,
        "generator": f"{GENERATOR_NAME} {__version__}",
        "seed": seed,
        "record_count": records,
        "files": [{k: r[k] for k in ("name", "bytes", "sha256")} | {"records": len(r["records"])} for r in results],
        "material": material.summary(),
        "config": config.to_dict(),
        "pages": len(pages),
        "counts": {
            "pages_by_category": dict(sorted(by_category.items())),
            "records_by_type": dict(sorted(by_type.items())),
            "records_by_expected": dict(sorted(by_outcome.items())),
        },
        "records": all_records,
    }


def write_truth(truth: dict, handle) -> None:
    """JSON with one record per line, so the file stays readable and greppable at 100,000 records."""
    head = {k: v for k, v in truth.items() if k != "records"}
    text = json.dumps(head, indent=1, ensure_ascii=False, sort_keys=False)
    handle.write(text[:-2] + ',\n "records": [\n')
    rows = truth["records"]
    for i, entry in enumerate(rows):
        handle.write(
            json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + (",\n" if i + 1 < len(rows) else "\n")
        )
    handle.write(" ]\n}\n")
