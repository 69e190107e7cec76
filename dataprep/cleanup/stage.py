"""The cleanup stage: a stage folder's documents -> the same documents, ftfy'd where not yet done,
each kept or dropped by the first heuristic that applies (heuristics.py).

ftfy runs unless the input was written by extract, which already ran it on every page.
"""

from __future__ import annotations

import pyarrow as pa

from blending.stage_stats import StageStats
from dataprep.cleanup.heuristics import REASONS, fix_text, heuristic_reason, keeps_all_languages
from dataprep.framework.stage import DocumentFilter, Extras, Option
from dataprep.framework.tally import Tally
from dataprep.schema import DROP_REASON
from dataprep.text.language import detect_language, seed_langdetect

STAGES_WITH_FTFY = frozenset({"extract"})
LANGDETECT = "_langdetect"  # langdetect's language of the text: for the decision and stats, not written


def parse_languages(value: str) -> tuple[str, ...]:
    return tuple(code.strip() for code in value.split(",") if code.strip())


class CleanupStage(DocumentFilter):
    name = "cleanup"
    help = "ftfy and the paper's heuristics (non_english, javascript_notice, too_short) on any source"
    reasons = REASONS
    section = "cleanup"
    input_help = "stage output folder(s) (extract's or ingest's)"
    options = [Option("--languages", 'languages to keep: "en" (default), a list "en,de", or "all"',
                      field="languages", type=parse_languages)]

    def setup(self) -> None:
        seed_langdetect(self.config.langdetect_seed)  # in every worker, before its first detection

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """ftfy, unless every input was written by extract, which ran it already."""
        run_ftfy = any(record["stage"] not in STAGES_WITH_FTFY for record in self.ctx.upstream)
        texts = [fix_text(t or "") if run_ftfy else (t or "") for t in batch.column("text").to_pylist()]
        return batch.set_column(batch.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))

    def score(self, batch: pa.RecordBatch) -> dict:
        if keeps_all_languages(self.config):
            return {LANGDETECT: [None] * batch.num_rows}
        return {LANGDETECT: [detect_language(t) for t in batch.column("text").to_pylist()]}

    def keep(self, row: dict) -> str | None:
        return heuristic_reason(row["text"], row[LANGDETECT], self.config)

    def tally(self, row: dict, tally: Tally) -> None:
        """langdetect's languages of the kept and of the non_english documents."""
        if row[DROP_REASON] is None:
            tally.count("langdetect_kept", row[LANGDETECT])
        elif row[DROP_REASON] == "non_english":
            tally.count("langdetect_dropped", row[LANGDETECT])

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        return Extras({"langdetect_kept": tally.histogram("langdetect_kept"),
                       "langdetect_dropped": tally.histogram("langdetect_dropped")})
