"""The quality stage: every document gets `quality_score` from the fastText classifier and
`pareto_draw`; GPT-3's Pareto rule keeps it or drops it as `low_quality` (pareto.py).

The model file is checked on the driver before any Spark work (model.py), sent once to every executor
(SparkFiles) and loaded once per Python worker; documents are scored a whole Arrow batch per fastText
call. Without --model the default classifier is used, trained once from the shipped texts and cached
(default_model.py). stats.json's `extra`: score histograms of kept and dropped documents, the fractions
of documents and characters removed, the model's sha256.
"""

from __future__ import annotations

import pyarrow as pa

from blending.hashing import sha256_file
from blending.stage_stats import StageStats
from dataprep.config import config_hash
from dataprep.framework.stage import (
    DocumentFilter,
    Extras,
    Option,
    RunContext,
    StageSettingsError,
    per_worker,
    shipped_path,
)
from dataprep.framework.tally import Tally
from dataprep.quality.model import ModelError, check_model, score_texts
from dataprep.quality.pareto import DROP_REASON as LOW_QUALITY
from dataprep.quality.pareto import keeps, pareto_draw
from dataprep.schema import DROP_REASON

QUALITY_SCORE, PARETO_DRAW = "quality_score", "pareto_draw"
HISTOGRAM_BINS = 10  # score histogram: [0, 0.1), ..., [0.9, 1]


def score_bin(score: float) -> int:
    return min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))


class QualityStage(DocumentFilter):
    name = "quality"
    help = "fastText quality score per document, then GPT-3's Pareto filter (alpha 3) keeps or drops it"
    reasons = [LOW_QUALITY]
    section = "quality"
    input_help = "stage output folder(s) (cleanup's)"
    options = [
        Option("--model", "the classifier (train-classifier's model.bin; default: the default classifier, "
                          "trained once from the shipped texts and cached)"),
        Option("--seed", "seed of the Pareto draws (0)", field="pareto_seed", type=int),
        Option("--alpha", "Pareto shape (3: GPT-3's)", field="pareto_alpha", type=float),
    ]
    columns = [pa.field(QUALITY_SCORE, pa.float64()), pa.field(PARETO_DRAW, pa.float64())]
    epilog = ("A document is kept when pareto_draw > 1 - quality_score; pareto_draw depends only on its doc_id "
              "and the seed, so decisions never depend on partitioning or order.")

    @classmethod
    def prepare(cls, config, options: dict) -> dict:
        """The model: the given file, or the default classifier (trained now if not cached); refused with
        a message when it is missing, corrupt or trained for other labels."""
        model = options.get("model")
        if model is None:
            from dataprep.quality.default_model import default_model

            model = str(default_model(config.classifier))
        try:
            check_model(model)
        except ModelError as e:
            raise StageSettingsError(str(e)) from e
        return {**options, "model": model}

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.model_sha256 = sha256_file(self.opts["model"]) if self.opts.get("model") else None

    def config_hash(self) -> str:
        # the model by content: the same file elsewhere reuses the output, a retrained one reruns the stage
        return config_hash(self.config, self.ctx.config.output, self.model_sha256)

    def shipped_files(self) -> list[str]:
        return [self.opts["model"]]

    def setup(self) -> None:
        path = shipped_path(self.opts["model"])
        self._model = per_worker(("quality-model", self.model_sha256), lambda: check_model(path))

    def score(self, batch: pa.RecordBatch) -> dict:
        texts = batch.column("text").to_pylist()
        scores = score_texts(self._model, texts)
        seed, alpha = self.config.pareto_seed, self.config.pareto_alpha
        draws = [pareto_draw(doc_id, seed, alpha) for doc_id in batch.column("doc_id").to_pylist()]
        return {QUALITY_SCORE: scores, PARETO_DRAW: draws}

    def keep(self, row: dict) -> str | None:
        return None if keeps(row[QUALITY_SCORE], row[PARETO_DRAW]) else LOW_QUALITY

    def tally(self, row: dict, tally: Tally) -> None:
        """Score histograms and characters, of the kept and of the dropped documents."""
        verdict = "kept" if row[DROP_REASON] is None else "dropped"
        tally.count(f"scores_{verdict}", score_bin(row[QUALITY_SCORE]))
        tally.count("characters", verdict, len(row["text"] or ""))

    def extras(self, tally: Tally, figures: dict, stats: StageStats) -> Extras:
        histograms = {verdict: [tally.total(f"scores_{verdict}", b) for b in range(HISTOGRAM_BINS)]
                      for verdict in ("kept", "dropped")}
        kept_chars, dropped_chars = tally.total("characters", "kept"), tally.total("characters", "dropped")
        return Extras({
            "score_histogram": {"bin_edges": [i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)],
                                **histograms},
            "removed_fraction": {
                "documents": stats.dropped.get(LOW_QUALITY, 0) / stats.in_rows if stats.in_rows else 0.0,
                "characters": dropped_chars / (kept_chars + dropped_chars) if kept_chars + dropped_chars else 0.0,
            },
            "characters": {"kept": kept_chars, "dropped": dropped_chars},
            "model_sha256": self.model_sha256,
            "pareto": {"alpha": self.config.pareto_alpha, "seed": self.config.pareto_seed},
        })
