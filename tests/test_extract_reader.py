"""The WARC reader and the per-record decisions on real WARC files and real faults, without Spark."""

import gzip
import zlib
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator

from dataprep.config import ExtractConfig
from dataprep.extract.record import extract_record
from dataprep.extract.stage import ExtractStage
from dataprep.extract.warc_reader import CORRUPT, TRUNCATED, read_warc
from dataprep.framework.spark_rows import BAD_FILE, FILE_COUNTS

WARC = Path(__file__).parent / "fixtures" / "warc"
CC_WARC = WARC / "resiliparse_warcfile.warc.gz"
CONFIG = ExtractConfig()


def _records(path: Path, max_block: int = CONFIG.max_payload_bytes):
    with open(path, "rb") as f:
        return list(read_warc(f, max_block))


def _outcomes(path: Path, config: ExtractConfig = CONFIG) -> list:
    return [extract_record(r, path.name, "test", config) for r in _records(path, config.max_payload_bytes)]


def _members(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each gzip member, found independently of the reader."""
    members, pos = [], 0
    while pos < len(data):
        inflater = zlib.decompressobj(wbits=31)
        inflater.decompress(data[pos:])
        length = len(data) - pos - len(inflater.unused_data)
        members.append((pos, length))
        pos += length
    return members


def test_genuine_common_crawl_file_reads_whole_and_matches_fastwarc():
    records = _records(CC_WARC)
    assert len(records) == 50
    assert all(r.fault is None for r in records)
    assert sum(r.in_bytes for r in records) == CC_WARC.stat().st_size  # every byte is in some record
    library = [(r.stream_pos, r.record_id) for r in ArchiveIterator(str(CC_WARC), parse_http=False)]
    ours = []
    for r in records:
        header = r.header.decode()
        record_id = next(line.split(":", 1)[1].strip() for line in header.splitlines() if line.startswith("WARC-Record-ID"))
        ours.append((int(r.offset), record_id))
    assert ours == library


def test_clipped_record_is_truncated_with_its_url():
    path = WARC / "resiliparse_clipped.warc.gz"
    (row,) = _outcomes(path)
    assert row.drop_reason == TRUNCATED
    assert row.url.startswith("http://www.houstonpress.com/")
    assert row.in_bytes == path.stat().st_size
    assert "of 88275 bytes" in row.detail


def test_corrupted_gzip_member_costs_only_its_record(tmp_path):
    data = CC_WARC.read_bytes()
    members = _members(data)
    offset, length = members[12]
    broken = bytearray(data)
    for i in range(offset + length // 2, offset + length // 2 + 32):
        broken[i] ^= 0x5A
    path = tmp_path / "corrupt.warc.gz"
    path.write_bytes(bytes(broken))

    clean = {r.offset: r for r in _records(CC_WARC)}
    records = _records(path)
    faults = [r for r in records if r.fault]
    assert [(r.offset, r.fault) for r in faults] == [(str(offset), CORRUPT)]
    assert faults[0].detail.startswith("gzip:")
    assert len(records) == 50  # the 49 others are read, the broken one counted
    assert sum(r.in_bytes for r in records) == len(broken)
    for r in records:
        if not r.fault:
            assert r.data == clean[r.offset].data
    reasons = [row.drop_reason for row in _outcomes(path)]
    assert reasons.count(CORRUPT) == 1


def test_garbage_between_members_is_one_counted_region(tmp_path):
    data = CC_WARC.read_bytes()
    offset, _ = _members(data)[5]
    junk = b"\x00garbage that is not gzip\x00" * 20
    path = tmp_path / "junk.warc.gz"
    path.write_bytes(data[:offset] + junk + data[offset:])
    records = _records(path)
    faults = [(r.offset, r.fault, r.in_bytes) for r in records if r.fault]
    assert faults == [(str(offset), CORRUPT, len(junk))]
    assert len(records) == 51
    assert sum(r.in_bytes for r in records) == path.stat().st_size


def test_file_cut_inside_a_member_ends_with_a_truncated_record(tmp_path):
    data = CC_WARC.read_bytes()
    offset, length = _members(data)[20]
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[: offset + length // 2])
    records = _records(path)
    assert len(records) == 21
    assert [r.fault for r in records[:-1]] == [None] * 20
    assert (records[-1].offset, records[-1].fault) == (str(offset), TRUNCATED)
    assert sum(r.in_bytes for r in records) == path.stat().st_size


def test_plain_warc_with_garbage_and_a_record_without_content_length(tmp_path):
    plain = (WARC / "warcio_example-iana.org-chunked.warc").read_bytes()
    clean = _records(WARC / "warcio_example-iana.org-chunked.warc")
    assert [r.fault for r in clean] == [None, None, None]
    second = int(clean[1].offset)
    no_length = b"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:x>\r\n\r\nbody without a length\r\n\r\n"
    path = tmp_path / "damaged.warc"
    path.write_bytes(plain[:second] + b"stray bytes\r\n" + no_length + plain[second:])
    records = _records(path)
    assert [r.fault for r in records] == [None, CORRUPT, CORRUPT, None, None]
    assert records[1].in_bytes == len(b"stray bytes\r\n")
    assert "Content-Length" in records[2].detail
    assert [r.data for r in records if not r.fault] == [r.data for r in clean]
    assert sum(r.in_bytes for r in records) == path.stat().st_size


def test_warcio_format_cases():
    # revisit, request and warcinfo records are not responses; a resource record is not an HTTP response
    example = _outcomes(WARC / "warcio_example.warc.gz")
    assert [r.drop_reason for r in example] == ["not_response"] * 2 + [None] + ["not_response"] * 3
    assert example[2].lang == "en" and "illustrative examples" in example[2].text
    resource = [r.drop_reason for r in _outcomes(WARC / "warcio_example-resource.warc.gz")]
    assert resource == ["not_response"] * 3
    # POST: the requests are not responses, the responses are JSON
    post = [r.drop_reason for r in _outcomes(WARC / "warcio_post-test.warc.gz")]
    assert post == ["not_html", "not_response"] * 3
    # chunked transfer coding is undone before the page is read
    chunked = _outcomes(WARC / "warcio_example-iana.org-chunked.warc")
    assert [r.drop_reason for r in chunked] == ["not_response", None, "not_response"]
    assert chunked[1].text.startswith("New Root Zone trust anchor being distributed.")


def _first_html_response(records):
    for raw in records:
        if b"WARC-Type: response" in raw.header and b"text/html" in raw.block[:2000]:
            return raw
    raise AssertionError("no HTML response")


def test_broken_http_header_empty_payload_and_undecodable_content():
    raw = _first_html_response(_records(CC_WARC))
    status_end = raw.block.index(b"\r\n")
    broken = raw.block[:0] + b"X" * status_end + raw.block[status_end:]  # same length, no status line
    raw.block = broken
    assert extract_record(raw, "f", "s", CONFIG).drop_reason == "bad_http_headers"

    raw = _first_html_response(_records(CC_WARC))
    http_head = raw.block[: raw.block.index(b"\r\n\r\n") + 4]
    empty = _with_block(raw, http_head)
    assert extract_record(empty, "f", "s", CONFIG).drop_reason == "empty_payload"

    head = http_head.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)
    garbled = _with_block(raw, head + gzip.compress(b"<html>x</html>")[:10] + b"\xff" * 100)
    row = extract_record(garbled, "f", "s", CONFIG)
    assert row.drop_reason == "decode_error" and "gzip" in row.detail


def _with_block(raw, block: bytes):
    from dataprep.extract.warc_reader import RawRecord

    lines = [
        f"Content-Length: {len(block)}".encode() if line.lower().startswith(b"content-length:") else line
        for line in raw.header.split(b"\r\n")
    ]
    return RawRecord(raw.offset, raw.in_bytes, None, None, b"\r\n".join(lines), block, len(block))


def test_payload_cap_reads_past_large_records():
    config = ExtractConfig(max_payload_bytes=10_000)
    capped = _outcomes(CC_WARC, config)
    full = _outcomes(CC_WARC)
    records = _records(CC_WARC, config.max_payload_bytes)
    big_html = {
        r.offset for r, row in zip(records, full)
        if r.block_length > 10_000 and row.drop_reason not in ("not_response", "not_html")
    }
    assert big_html  # the file has pages over 10 kB
    assert {row.origin.split("@")[1] for row in capped if row.drop_reason == "payload_too_large"} == big_html
    assert all(len(r.block) <= 65536 for r in records)  # only the head of a capped block is held


def test_unopenable_and_non_warc_files_are_bad_files(tmp_path):
    extractor = ExtractStage.with_options(source="s").rows_of_file
    missing = list(extractor(str(tmp_path / "missing.warc.gz")))
    assert len(missing) == 1 and "No such file" in missing[0][BAD_FILE]
    not_warc = tmp_path / "page.warc.gz"
    not_warc.write_bytes(gzip.compress(b"<html>just a page</html>"))
    rows = list(extractor(str(not_warc)))
    assert rows == [{FILE_COUNTS: {"input_retries": 0}}, {BAD_FILE: f"{not_warc}: no WARC record in the file"}]
    # a file whose only record is clipped is still a WARC file with one (truncated) record
    clipped = list(extractor(str(WARC / "resiliparse_clipped.warc.gz")))
    assert [r["drop_reason"] for r in clipped if FILE_COUNTS not in r] == [TRUNCATED]


@pytest.mark.parametrize("name", ["resiliparse_clueweb-quirk.warc.gz"])
def test_old_warc_version_and_bare_lf_http_headers(name):
    # ClueWeb09: WARC/0.18, HTTP headers ended by bare LF, a Content-Encoding header on decoded payloads
    rows = _outcomes(WARC / name)
    assert rows[0].drop_reason == "not_response"  # warcinfo
    assert len(rows) == 30
    assert {r.lang for r in rows[1:]} == {"ja"}  # all 29 pages reach language ID
    assert all(r.drop_reason in (None, "empty_extraction") for r in rows[1:])
