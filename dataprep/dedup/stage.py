"""The dedup stage: documents of one or several stage folders (sources, snapshots) -> the same documents,
exact and near-duplicates dropped, one survivor per group (frames.py has the dataflow).

Every member of a group of two or more, the survivor included, carries `cluster_id` (the survivor's
doc_id); dropped members carry `duplicate_of` (the survivor, never a dropped document). Every output
row keeps its MinHash signature (`minhash`), so that a later snapshot is deduplicated against this
output with `--against` without computing them again; documents of earlier outputs always win.
`minhash.json` in the output folder records how the signatures were made; `--against` refuses an
output whose signatures were made otherwise.
"""

from __future__ import annotations

import json

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from blending.stage_folder import InputError, folder_record, read_json
from blending.stage_stats import StageStats
from dataprep.config import config_hash
from dataprep.dedup.frames import CLUSTER_ID, DUPLICATE_OF, REASONS, deduplicate, with_assignments
from dataprep.dedup.keys import MINHASH
from dataprep.framework.spark_folders import read_input_folders
from dataprep.framework.stage import Extras, Option, Transformed, WholeDatasetStage
from dataprep.framework.tally import Tally

SIGNATURES_FILE = "minhash.json"
SIGNATURE_SCHEME = "datasketch affine32 over xxh3-64 word hashes, multilinear 5-word shingle hash, v1"


def parse_sources(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


class DedupStage(WholeDatasetStage):
    name = "dedup"
    help = "exact (URL, text) then fuzzy (MinHash LSH, Jaccard >= 0.8) dedup; one survivor per group by source priority"
    reasons = REASONS
    section = "dedup"
    input_help = "stage output folder(s): several sources or snapshots are deduplicated together"
    options = [
        Option("--priority", "sources in priority order, best first: SRC,SRC,... (dedup.priority); unlisted ones "
               "rank after them, by name", field="priority", type=parse_sources),
        Option("--against", "earlier dedup outputs: their documents win and are not written again; their "
               "signatures are reused", nargs="+", metavar="DIR", default=()),
    ]
    columns = [
        pa.field(MINHASH, pa.binary()),
        pa.field(DUPLICATE_OF, pa.string()),
        pa.field(CLUSTER_ID, pa.string()),
    ]
    epilog = (
        "A group: documents with the same normalised URL, or the same normalised text, or linked by pairs\n"
        "whose word 5-gram shingle sets have a Jaccard similarity >= dedup.jaccard_threshold (candidates\n"
        "from MinHash LSH: dedup.bands x dedup.rows_per_band). Its survivor: the best source of --priority,\n"
        "then the earliest origin (file name, then offset or row number), then doc_id."
    )

    def signature_record(self) -> dict:
        c = self.config
        return {"num_perm": c.num_perm, "seed": c.seed, "shingle_words": c.shingle_words, "scheme": SIGNATURE_SCHEME}

    def config_hash(self) -> str:
        """The section but its `partitions` (which cannot change the output), and what the earlier outputs
        of --against are (their _SUCCESS records), not only where."""
        section = {k: v for k, v in vars(self.config).items() if k != "partitions"}
        against = [folder_record(folder) for folder in self.opts["against"] or ()]
        return config_hash(section, self.ctx.config.output, against)

    def transform(self, documents: DataFrame) -> Transformed:
        """The documents with their assignments; the figures are the groups' counts (stats.json's extra)."""
        documents = documents.drop(MINHASH, DUPLICATE_OF, CLUSTER_ID)
        result = deduplicate(documents, self.config, self.config.priority, self._against(documents))
        return Transformed(with_assignments(documents, result.assignments), result.counts)

    def _against(self, documents: DataFrame) -> DataFrame | None:
        folders = list(self.opts["against"] or ())
        if not folders:
            return None
        for folder in folders:
            made = _signature_record(folder)
            if made != self.signature_record():
                raise InputError(f"--against {folder}: its signatures were made with {made}, "
                                 f"not {self.signature_record()}")
        earlier = read_input_folders(documents.sparkSession, folders).documents
        both = earlier.select("doc_id").join(documents.select("doc_id"), "doc_id", "left_semi").limit(3).collect()
        if both:
            ids = ", ".join(r.doc_id for r in both)
            raise InputError(f"documents both in the inputs and in --against ({ids})")
        return earlier.where(F.col(MINHASH).isNotNull())

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        signatures = json.dumps(self.signature_record(), indent=2) + "\n"
        return Extras(dict(figures), {SIGNATURES_FILE: signatures.encode()})


def _signature_record(folder: str) -> dict | None:
    record = read_json(folder, SIGNATURES_FILE)
    if record is None:
        raise InputError(f"--against {folder}: not a dedup output (no {SIGNATURES_FILE})")
    return record
