"""The quality classifier as a file: load and check it, score documents in batches.

A model is a fastText supervised model with exactly the labels `__label__high` and `__label__low`.
`quality_score` is the probability of `high`, in [0, 1]. Checks run on the driver before any Spark work,
so a missing, corrupt or foreign model stops the stage with a message, not a failed task.
"""

from __future__ import annotations

import struct
from pathlib import Path

import fasttext
import fasttext.FastText

from dataprep.quality.corpus import HIGH, LOW
from dataprep.quality.text import normalize

LABEL_PREFIX = "__label__"
LABELS = (LABEL_PREFIX + HIGH, LABEL_PREFIX + LOW)
PROBABILITY_OFFSET = 1e-5  # fastText's predict returns each probability plus 1e-5
_MAGIC = (793712314).to_bytes(4, "little")  # fastText's file format magic number
fasttext.FastText.eprint = lambda *args, **kwargs: None  # load_model's notice about the Python API


class ModelError(ValueError):
    """The model file cannot be used: missing, not a fastText model, or trained for other labels."""


def check_model(path: str | Path) -> fasttext.FastText._FastText:
    """The loaded model, or ModelError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no model file (train one: python -m dataprep train-classifier --out DIR)")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != _MAGIC:
        raise ModelError(f"{path}: not a fastText model file")
    try:
        model = fasttext.load_model(str(path))
    except (ValueError, RuntimeError, MemoryError) as e:
        raise ModelError(f"{path}: corrupt fastText model ({e})") from e
    if not model.is_quantized() and not _complete(path, model):
        raise ModelError(f"{path}: corrupt fastText model (its matrices do not end where the file does: "
                         "truncated or changed)")
    labels = tuple(sorted(model.get_labels()))
    if labels != LABELS:
        raise ModelError(f"{path}: trained with labels {', '.join(labels) or 'none'}; a quality model has "
                         f"exactly {' and '.join(LABELS)}")
    return model


def _complete(path: Path, model) -> bool:
    """fastText reads a truncated file without complaint; a full model file ends with its input matrix,
    one byte, and its output matrix, each written as rows and columns (int64) then float32 values."""
    dim = model.get_dimension()
    rows_in = len(model.get_words()) + model.f.getArgs().bucket
    rows_out = len(model.get_labels())
    size = path.stat().st_size
    out_at = size - rows_out * dim * 4 - 16
    in_at = out_at - 1 - rows_in * dim * 4 - 16
    if in_at < 0:
        return False
    with open(path, "rb") as f:
        f.seek(in_at)
        in_shape = struct.unpack("<qq", f.read(16))
        f.seek(out_at)
        out_shape = struct.unpack("<qq", f.read(16))
    return in_shape == (rows_in, dim) and out_shape == (rows_out, dim)




def score_texts(model: fasttext.FastText._FastText, texts: list[str | None]) -> list[float]:
    """quality_score of each text; a text without a single word scores 0."""
    normalized = [normalize(text or "") for text in texts]
    present = [i for i, text in enumerate(normalized) if text]
    scores = [0.0] * len(texts)
    if present:
        labels, probabilities = model.predict([normalized[i] for i in present], k=2)
        for i, names, probs in zip(present, labels, probabilities):
            high = dict(zip(names, probs)).get(LABELS[0], 0.0)
            scores[i] = min(1.0, max(0.0, float(high) - PROBABILITY_OFFSET))
    return scores
