"""Build a sample crawl: plan it, write its WARC files (in parallel when asked), write truth.json."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pycld2
from tqdm import tqdm

from .. import __version__
from ..schema import warc_origin
from .config import CATEGORY_OUTCOMES, SampleCrawlConfig
from .material import Material, load_material
from .plan import Page, build_plan
from .render import CHARSET_LABELS, jaccard, page_rng, payload, request_head, response_headers
from .truth import make_truth, write_truth
from .warc_records import (
    REVISIT_PROFILE,
    gzip_member,
    http_date,
    http_head,
    record,
    record_id,
    sha1_digest,
    warc_date,
    warc_fields,
)

_ISO_639_3 = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "ru": "rus",
    "zh": "zho",
    "ja": "jpn",
    "ko": "kor",
    "pt": "por",
    "it": "ita",
    "nl": "nld",
    "pl": "pol",
    "id": "ind",
    "bn": "ben",
}


def file_name(config: SampleCrawlConfig, seed: int, index: int) -> str:
    return f"{config.crawl_name}-{seed}-{index:05d}.warc.gz"


def languages_cld2(text: str) -> str | None:
    """Common Crawl's `languages-cld2` metadata field, from pycld2 over the HTML."""
    try:
        reliable, text_bytes, details = pycld2.detect(text.encode("utf-8", "replace"), isPlainText=False)
    except pycld2.error:
        return None
    languages = []
    for name, code, percent, score in details:
        if code == "un":
            continue
        entry = {"code": code}
        if code in _ISO_639_3:
            entry["code-iso-639-3"] = _ISO_639_3[code]
        entry.update({"text-covered": percent / 100, "score": score, "name": name})
        languages.append(entry)
    return json.dumps({"reliable": reliable, "text-bytes": text_bytes, "languages": languages}, separators=(",", ":"))


class _FileWriter:
    """Appends gzip-member records to one WARC file and notes where each one starts."""

    def __init__(self, path: Path, level: int):
        self.handle = open(path, "wb")
        self.level = level
        self.offset = 0
        self.sha = hashlib.sha256()

    def write(self, data: bytes, clip: float | None = None) -> tuple[int, int]:
        member = gzip_member(data, self.level)
        if clip is not None:
            member = member[: int(len(member) * clip)]
        start = self.offset
        self.handle.write(member)
        self.sha.update(member)
        self.offset += len(member)
        return start, len(member)

    def close(self) -> None:
        self.handle.close()


# Worker state: set before the pool forks, read by write_file in the children.
_JOB: dict = {}


def _page_entry(page: Page, pages: list[Page], names: list[str]) -> dict:
    outcome, stage = CATEGORY_OUTCOMES[page.category]
    if page.category == "legacy_charset" and page.language != "en":
        outcome, stage = "non_english", "cleanup"
    entry = {"page": page.index, "category": page.category, "expected": outcome, "stage": stage}
    if page.original is not None:
        entry["duplicate_of"] = {"page": page.original, "file": names[pages[page.original].file]}
    return entry


def write_file(file_index: int) -> dict:
    """Write one WARC file of the plan; return its record entries (without cross-file references filled)."""
    material: Material = _JOB["material"]
    config: SampleCrawlConfig = _JOB["config"]
    seed: int = _JOB["seed"]
    pages: list[Page] = _JOB["pages"]
    names: list[str] = _JOB["names"]
    name = names[file_index]
    writer = _FileWriter(Path(_JOB["dir"]) / name, config.gzip_level)
    entries: list[dict] = []
    pages_here = [p for p in pages if p.file == file_index]

    warcinfo_id = record_id(seed, "warcinfo", file_index)
    info = warc_fields(
        [
            ("isPartOf", f"{config.crawl_name}-{seed}"),
            ("publisher", "dataprep.samplecrawl"),
            ("description", "Sample crawl built from real pages and real text; truth.json says what each record is"),
            ("software", f"dataprep.samplecrawl {__version__}"),
            ("format", "WARC File Format 1.0"),
            ("conformsTo", "http://bibnum.bnf.fr/WARC/WARC_ISO_28500_version1_latestdraft.pdf"),
        ]
    )
    first_date = pages_here[0].date if pages_here else 0
    offset, size = writer.write(
        record(
            [
                ("WARC-Type", "warcinfo"),
                ("WARC-Date", warc_date(first_date)),
                ("WARC-Record-ID", warcinfo_id),
                ("Content-Type", "application/warc-fields"),
                ("WARC-Filename", name),
                ("WARC-Block-Digest", sha1_digest(info)),
            ],
            info,
        )
    )
    entries.append(
        {
            "offset": offset,
            "length": size,
            "type": "warcinfo",
            "id": warcinfo_id,
            "url": None,
            "expected": "not_response",
            "stage": "extract",
        }
    )

    for page in pages_here:
        rng = page_rng(seed, page.index, "fetch")
        ip = ".".join(str(b) for b in hashlib.sha1(page.url.split("/")[2].encode()).digest()[:4])
        date = warc_date(page.date)
        request_id = record_id(seed, page.index, "request")
        response_id = record_id(seed, page.index, "response")
        common = [("WARC-Warcinfo-ID", warcinfo_id)]
        original = pages[page.original] if page.original is not None else None
        page_entry = _page_entry(page, pages, names)

        modified_since = original.date if page.category == "revisit" else None
        request_block = request_head(page, modified_since)
        offset, size = writer.write(
            record(
                [
                    ("WARC-Type", "request"),
                    ("WARC-Date", date),
                    ("WARC-Record-ID", request_id),
                    ("Content-Type", "application/http; msgtype=request"),
                    *common,
                    ("WARC-IP-Address", ip),
                    ("WARC-Target-URI", page.url),
                    ("WARC-Block-Digest", sha1_digest(request_block)),
                ],
                request_block,
            )
        )
        entries.append(
            {
                "offset": offset,
                "length": size,
                "type": "request",
                "id": request_id,
                "url": page.url,
                "page": page.index,
                "expected": "not_response",
                "stage": "extract",
            }
        )

        if page.category == "revisit":
            block = http_head(
                "HTTP/1.1 304 Not Modified",
                [("Date", http_date(page.date - 1)), ("Server", "nginx"), ("Connection", "close")],
            )
            offset, size = writer.write(
                record(
                    [
                        ("WARC-Type", "revisit"),
                        ("WARC-Date", date),
                        ("WARC-Record-ID", response_id),
                        ("Content-Type", "application/http; msgtype=response"),
                        *common,
                        ("WARC-Concurrent-To", request_id),
                        ("WARC-IP-Address", ip),
                        ("WARC-Target-URI", page.url),
                        ("WARC-Profile", REVISIT_PROFILE),
                        ("WARC-Refers-To", record_id(seed, original.index, "response")),
                        ("WARC-Refers-To-Target-URI", original.url),
                        ("WARC-Refers-To-Date", warc_date(original.date)),
                        ("WARC-Block-Digest", sha1_digest(block)),
                    ],
                    block,
                )
            )
            entries.append(
                {"offset": offset, "length": size, "type": "revisit", "id": response_id, "url": page.url, **page_entry}
            )
            metadata_fields = [("fetchTimeMs", str(rng.randrange(40, 900)))]
        else:
            body, content_type, paragraphs, edits = payload(page, material, config, seed)
            block = http_head("HTTP/1.1 200 OK", response_headers(page, content_type, len(body))) + body
            mime = content_type.split(";")[0]
            clip = 0.4 + 0.4 * rng.random() if page.category == "truncated" else None
            offset, size = writer.write(
                record(
                    [
                        ("WARC-Type", "response"),
                        ("WARC-Date", date),
                        ("WARC-Record-ID", response_id),
                        ("Content-Type", "application/http; msgtype=response"),
                        *common,
                        ("WARC-Concurrent-To", request_id),
                        ("WARC-IP-Address", ip),
                        ("WARC-Target-URI", page.url),
                        ("WARC-Payload-Digest", sha1_digest(body)),
                        ("WARC-Block-Digest", sha1_digest(block)),
                        ("WARC-Identified-Payload-Type", mime),
                    ],
                    block,
                ),
                clip,
            )
            content_text = "\n".join(paragraphs)
            entry = {
                "offset": offset,
                "length": size,
                "type": "response",
                "id": response_id,
                "url": page.url,
                **page_entry,
                "content_type": mime,
                "payload_bytes": len(body),
            }
            if mime == "text/html":
                entry.update(
                    {
                        "language": page.language,
                        "charset": CHARSET_LABELS[page.charset],
                        "charset_declared": page.declared,
                        "template": material.templates[page.template].name,
                    }
                )
            if page.pool:
                entry["content"] = {
                    "source": page.pool,
                    "paragraphs": list(page.paragraphs),
                    "title": page.title,
                    "chars": len(content_text),
                    "sha1": hashlib.sha1(content_text.encode()).hexdigest(),
                }
            if page.category == "javascript_notice":
                entry["notice"] = page.notice
            if page.category == "near_duplicate":
                original_text = "\n".join(material.pools[page.pool].texts[i] for i in page.paragraphs)
                score = jaccard(original_text, content_text, config.shingle_words)
                entry.update({"edit_rate": page.edit_rate, "edits": edits, "jaccard": round(score, 4)})
                if score < config.jaccard_threshold:
                    entry["expected"], entry["stage"] = "keep", None
            if clip is not None:
                entry["truncated_at"] = size
            entries.append(entry)
            metadata_fields = [("fetchTimeMs", str(rng.randrange(40, 900)))]
            if mime == "text/html":
                metadata_fields.append(("charset-detected", CHARSET_LABELS[page.charset]))
                cld2 = languages_cld2(body.decode(page.charset, "replace"))
                if cld2:
                    metadata_fields.append(("languages-cld2", cld2))

        if page.with_metadata:
            metadata_id = record_id(seed, page.index, "metadata")
            block = warc_fields(metadata_fields)
            offset, size = writer.write(
                record(
                    [
                        ("WARC-Type", "metadata"),
                        ("WARC-Date", date),
                        ("WARC-Record-ID", metadata_id),
                        ("Content-Type", "application/warc-fields"),
                        *common,
                        ("WARC-Concurrent-To", response_id),
                        ("WARC-Target-URI", page.url),
                        ("WARC-Block-Digest", sha1_digest(block)),
                    ],
                    block,
                )
            )
            entries.append(
                {
                    "offset": offset,
                    "length": size,
                    "type": "metadata",
                    "id": metadata_id,
                    "url": page.url,
                    "page": page.index,
                    "expected": "not_response",
                    "stage": "extract",
                }
            )
    writer.close()
    for entry in entries:
        entry["file"] = name
        entry["origin"] = warc_origin(name, entry["offset"])
    return {"name": name, "bytes": writer.offset, "sha256": writer.sha.hexdigest(), "records": entries}


def _run_files(count: int, workers: int, progress: bool):
    bar = tqdm(total=count, unit="file", desc="sample crawl", disable=not progress)
    if workers > 1 and count > 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=context) as pool:
            for result in pool.map(write_file, range(count)):
                bar.update()
                yield result
    else:
        for index in range(count):
            yield write_file(index)
            bar.update()
    bar.close()


def build_sample_crawl(
    out_dir: str | Path,
    records: int,
    files: int,
    seed: int,
    material: str | Path | Material | None = None,
    config: SampleCrawlConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write `files` WARC files holding exactly `records` records and `truth.json` into `out_dir`;
    return the truth. The same seed, material and config give byte-identical files for any `workers`."""
    config = config or SampleCrawlConfig()
    if not isinstance(material, Material):
        material = load_material(material)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not overwrite and any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} exists and is not empty (use overwrite=True / --overwrite)")
        shutil.rmtree(out_dir)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    pages = build_plan(material, config, records, files, seed)
    names = [file_name(config, seed, i) for i in range(files)]
    _JOB.update(material=material, config=config, seed=seed, pages=pages, names=names, dir=str(tmp))
    try:
        results = list(_run_files(files, workers, progress))
    finally:
        _JOB.clear()

    truth = make_truth(results, pages, material, config, records, files, seed)
    with open(tmp / "truth.json", "w") as handle:
        write_truth(truth, handle)
    tmp.rename(out_dir)
    return truth
