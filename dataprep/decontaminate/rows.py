"""Document rows in, document rows out: one Arrow batch at a time, without Spark.

An untouched document's row is passed through as it is (its new columns null). A split document becomes
one row per kept piece: the document's columns, its `text` cut to the piece, `piece` (0, 1, ...),
`parent_doc_id`, `doc_id` = the first 16 hex digits of sha1(parent doc_id + NUL + str(piece)) and `cuts`
(the character ranges removed from the original text). A dropped document keeps its row, with its cuts
and the drop reason.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from dataprep.decontaminate.matcher import Matcher, Outcome, decontaminate
from dataprep.framework.tally import Tally
from dataprep.schema import DROP_REASON, IN_BYTES, IN_ROWS

PIECE = "piece"
PARENT_DOC_ID = "parent_doc_id"
CUTS = "cuts"
CUTS_TYPE = pa.list_(pa.struct([pa.field("start", pa.int64()), pa.field("end", pa.int64())]))
COLUMNS = [pa.field(PIECE, pa.int32()), pa.field(PARENT_DOC_ID, pa.string()), pa.field(CUTS, CUTS_TYPE)]

# Counters of the per-document tally (stats.json's extra is summed from them), keyed as noted.
DOCUMENTS = "documents"  # "untouched" | "split" | drop reason
PIECES = "pieces"  # "kept" | "dropped" (too short, in documents that were kept or had no clean piece)
CHARACTERS_REMOVED = "characters_removed"  # from the documents that were kept (split); one key, None
MATCHES = "matches"  # task: occurrences of the task's n-grams
ITEMS = "items"  # item id: documents in which the item's text was found


def piece_doc_id(parent_doc_id: str, piece: int) -> str:
    return hashlib.sha1(f"{parent_doc_id}\0{piece}".encode()).hexdigest()[:16]


def output_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input's fields (bookkeeping aside), the stage's columns where the input lacks them, then the
    drop reason and the input-row count the writer needs."""
    skip = {DROP_REASON, IN_ROWS}
    fields = [f for f in input_schema if f.name not in skip]
    fields += [f for f in COLUMNS if f.name not in input_schema.names]
    return pa.schema(fields + [pa.field(DROP_REASON, pa.string()), pa.field(IN_ROWS, pa.int64())])


def tally_outcome(tally: Tally, outcome: Outcome, text_length: int, matcher: Matcher) -> None:
    if outcome.untouched:
        tally.count(DOCUMENTS, "untouched")
        return
    tally.count(DOCUMENTS, outcome.reason or "split")
    if outcome.reason is None:
        tally.count(PIECES, "kept", len(outcome.pieces))
        tally.count(CHARACTERS_REMOVED, None, outcome.removed_chars(text_length))
    tally.count(PIECES, "dropped", outcome.short_pieces)
    index = matcher.index
    for match in outcome.matches:
        for task_id in np.unique(index.item_task[index.items_of(match.length, match.key)]).tolist():
            tally.count(MATCHES, index.tasks[task_id])
    for item_id in matcher.item_ids(outcome.matches).tolist():
        tally.count(ITEMS, item_id)


def decontaminate_batch(batch: pa.RecordBatch, matcher: Matcher, schema: pa.Schema, tally: Tally,
                        cut_chars: int = 200, min_piece_chars: int = 200, max_cuts: int = 10) -> pa.RecordBatch:
    """The output rows of a batch of documents (schema: output_schema(batch.schema)); tallies each
    document into `tally`."""
    texts = batch.column("text").to_pylist()
    doc_ids = batch.column("doc_id").to_pylist()
    taken: list[int] = []
    changed: dict[int, tuple] = {}  # output row -> (text, doc_id, piece, parent, cuts, reason, in_rows)
    for i, text in enumerate(texts):
        outcome = decontaminate(text or "", matcher, cut_chars, min_piece_chars, max_cuts)
        tally_outcome(tally, outcome, len(text or ""), matcher)
        if outcome.untouched:
            taken.append(i)
            continue
        cuts = [{"start": s, "end": e} for s, e in outcome.cuts]
        if outcome.reason is not None:
            changed[len(taken)] = (text, doc_ids[i], None, None, cuts, outcome.reason, 1)
            taken.append(i)
            continue
        for piece, (start, end) in enumerate(outcome.pieces):
            changed[len(taken)] = (text[start:end], piece_doc_id(doc_ids[i], piece), piece, doc_ids[i], cuts,
                                   None, int(piece == 0))
            taken.append(i)
    out = batch.take(pa.array(taken, pa.int32())) if len(taken) != batch.num_rows or changed else batch
    columns = {name: out.column(name) for name in out.schema.names}
    for f in COLUMNS:
        columns.setdefault(f.name, pa.nulls(out.num_rows, f.type))
    reasons = [None] * out.num_rows
    in_rows = [1] * out.num_rows
    if changed:
        edited = {name: columns[name].to_pylist() for name in ("text", "doc_id", PIECE, PARENT_DOC_ID, CUTS)}
        in_bytes = columns[IN_BYTES].to_pylist() if IN_BYTES in columns else None
        for row, (text, doc_id, piece, parent, cuts, reason, counted) in changed.items():
            edited["text"][row], edited["doc_id"][row] = text, doc_id
            edited[PIECE][row], edited[PARENT_DOC_ID][row], edited[CUTS][row] = piece, parent, cuts
            reasons[row], in_rows[row] = reason, counted
            if in_bytes is not None and not counted:
                in_bytes[row] = 0  # an extra piece: its document's bytes are counted on piece 0
        for name, values in edited.items():
            columns[name] = pa.array(values, schema.field(name).type)
        if in_bytes is not None:
            columns[IN_BYTES] = pa.array(in_bytes, schema.field(IN_BYTES).type)
    columns[DROP_REASON] = pa.array(reasons, pa.string())
    columns[IN_ROWS] = pa.array(in_rows, pa.int64())
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def distinct_keys(texts: list[str | None], matcher: Matcher) -> tuple[list[int], list[int]]:
    """(lengths, keys as signed 64-bit) of the distinct indexed n-grams of each text, all texts together:
    one row per (document, n-gram), for counting in how many documents each n-gram occurs."""
    lengths, keys = [], []
    for text in texts:
        for length, key in sorted(matcher.distinct_keys(text or "")):
            lengths.append(length)
            keys.append(key - (1 << 64) if key >= 1 << 63 else key)
    return lengths, keys


def unsigned(key: int) -> int:
    return key + (1 << 64) if key < 0 else key
