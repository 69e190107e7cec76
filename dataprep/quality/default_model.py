"""The default classifier, trained once per machine from the shipped texts and cached.

The quality stage and `python -m dataprep run` use it when no --model is given. It lives in
$DATAPREP_CACHE (default: $XDG_CACHE_HOME/mtnlg-dataprep, else ~/.cache/mtnlg-dataprep) under
`quality-classifier-<key>/` with its metrics.json, where the key hashes the training texts, the
classifier config and TRAINING_VERSION: a rerun reuses it, a change trains a new one. Training is
deterministic, so every machine gets the same model file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from blending.hashing import sha256_file
from dataprep.config import ClassifierConfig
from dataprep.quality.corpus import default_paths
from dataprep.quality.heldout import HELDOUT_FILE
from dataprep.quality.train import METRICS_FILE, MODEL_FILE, summary, train_classifier

TRAINING_VERSION = 2  # raise when a change to the training code changes the model


def cache_root() -> Path:
    if os.environ.get("DATAPREP_CACHE"):
        return Path(os.environ["DATAPREP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mtnlg-dataprep"


def default_model_folder(config: ClassifierConfig) -> Path:
    positives, negatives = default_paths()
    identity = {"version": TRAINING_VERSION, "config": dataclasses.asdict(config),
                "data": [sha256_file(p) for p in [*positives, *negatives, HELDOUT_FILE]]}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / f"quality-classifier-{key}"


def default_model(config: ClassifierConfig, log=print) -> Path:
    """The default classifier's model file, trained now if not cached yet."""
    folder = default_model_folder(config)
    if (folder / MODEL_FILE).is_file() and (folder / METRICS_FILE).is_file():
        return folder / MODEL_FILE
    log(f"training the default quality classifier (once; cached in {folder})")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        metrics = train_classifier(partial, *default_paths(), config)
        try:
            os.rename(partial, folder)
        except OSError:  # another process finished first: its model is the same file
            if not (folder / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log(summary(metrics))
    return folder / MODEL_FILE
