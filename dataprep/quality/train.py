"""`python -m dataprep train-classifier --out DIR`: train the quality classifier, measure it honestly.

Writes DIR/model.bin (fastText supervised, word 2-grams, labels high / low) and DIR/metrics.json:
grouped 5-fold cross-validated accuracy (mean and spread), precision, recall, confusion matrix,
accuracy per source, the length-only baseline, the held-out accuracy of the written model, counts per
source, the model's size and sha256, training time. With no --positives/--negatives it trains the
default classifier from the texts shipped in dataprep/quality/data/ (see build_corpus.py).

The written model is trained on every group but the held-out ones (ClassifierConfig.heldout_fraction),
so its held-out accuracy is measured on pages and books it never saw. Training runs on one thread with
a fixed seed: the same data and config give the same model file.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import fasttext

from blending.hashing import sha256_file
from blending.user_errors import EXIT_BAD_INPUT, one_line
from dataprep.config import ClassifierConfig, DataprepConfig, QualityConfig
from dataprep.quality.corpus import Example, default_paths, load_examples
from dataprep.quality.evaluation import cross_validate, heldout_groups, ranking_scores, roc_auc, scores
from dataprep.quality.heldout import HELDOUT_FILE, load_heldout
from dataprep.quality.model import LABEL_PREFIX, score_texts
from dataprep.quality.text import normalize

HELP = "train the quality classifier (fastText word 2-grams) and write model.bin + metrics.json"
MODEL_FILE = "model.bin"
METRICS_FILE = "metrics.json"
_M_MMAP_THRESHOLD = -3
MIN_MATRIX_BYTES = 128 * 1024  # allocations this large get fresh pages once the mmap threshold is fixed


def zeroed_large_allocations() -> None:
    """fastText leaves most of a new model's input matrix unwritten when it trains on one thread (its
    initialisation fills one tenth of the matrix per thread); glibc can hand it recycled heap memory, so
    a second training in one process starts from garbage: "Encountered NaN", or a different model.
    A fixed mmap threshold makes every large allocation fresh, zeroed pages."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MIN_MATRIX_BYTES)
    except (OSError, AttributeError):  # not glibc: its allocator does not recycle into new matrices this way
        pass


def fit(examples: list[Example], config: ClassifierConfig, workdir: str) -> fasttext.FastText._FastText:
    if config.bucket * config.dim * 4 < MIN_MATRIX_BYTES:
        raise ValueError(f"classifier.bucket x classifier.dim must be at least {MIN_MATRIX_BYTES // 4} (the input "
                         "matrix must be a fresh allocation to start from zeros: see zeroed_large_allocations)")
    zeroed_large_allocations()
    path = os.path.join(workdir, "train.txt")
    with open(path, "w", encoding="utf-8") as f:
        for example in examples:
            f.write(f"{LABEL_PREFIX}{example.label} {normalize(example.text)}\n")
    try:
        return fasttext.train_supervised(
            path, wordNgrams=config.word_ngrams, dim=config.dim, bucket=config.bucket, epoch=config.epoch,
            lr=config.lr, minCount=config.min_count, seed=config.seed, thread=1, verbose=0, loss="softmax",
        )
    except RuntimeError as e:  # fastText's "Encountered NaN." when training diverges
        raise RuntimeError(f"fastText training failed ({e}); a lower classifier.lr usually helps") from e


def predict(model: fasttext.FastText._FastText, examples: list[Example]) -> list[str]:
    labels, _ = model.predict([normalize(e.text) for e in examples])
    return [names[0].removeprefix(LABEL_PREFIX) for names in labels]


def counts_per_source(examples: list[Example]) -> dict:
    windows, groups = Counter(), defaultdict(set)
    for e in examples:
        windows[(e.label, e.source)] += 1
        groups[(e.label, e.source)].add(e.group)
    return {f"{label}/{source}": {"windows": n, "groups": len(groups[(label, source)])}
            for (label, source), n in sorted(windows.items())}


def heldout_set_scores(model: fasttext.FastText._FastText, heldout: list[Example], alpha: float) -> dict:
    """ROC AUC and accuracies on the held-out set, overall and for each source's windows against all the
    other class's."""
    truth = [e.label for e in heldout]
    high_scores = score_texts(model, [e.text for e in heldout])
    per_source = {}
    for source in sorted({e.source for e in heldout}):
        label = next(e.label for e in heldout if e.source == source)
        picked = [i for i, e in enumerate(heldout) if e.source == source or e.label != label]
        per_source[f"{label}/{source}"] = round(roc_auc([truth[i] for i in picked], [high_scores[i] for i in picked]), 4)
    return {**ranking_scores(truth, high_scores, alpha), "groups": len({e.group for e in heldout}),
            "roc_auc_per_source": per_source}


def train_classifier(out: Path, positives: list[Path], negatives: list[Path], config: ClassifierConfig,
                     heldout_path: Path = HELDOUT_FILE, pareto_alpha: float = QualityConfig.pareto_alpha) -> dict:
    started = time.perf_counter()
    heldout_set = load_heldout(heldout_path, config.window_chars, config.max_windows_per_group, config.seed)
    never_trained_on = {e.group for e in heldout_set}
    examples = load_examples(positives, negatives, config.window_chars, config.max_windows_per_group, config.seed)
    examples = [e for e in examples if e.group not in never_trained_on]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quality-train-") as workdir:
        cv = cross_validate(examples, config.folds, lambda train, test: predict(fit(train, config, workdir), test))
        held = heldout_groups(examples, config.heldout_fraction)
        train = [e for e in examples if e.group not in held]
        test = [e for e in examples if e.group in held]
        fit_started = time.perf_counter()
        model = fit(train, config, workdir)
        fit_seconds = time.perf_counter() - fit_started
        heldout = scores([e.label for e in test], predict(model, test))
        heldout_set_metrics = heldout_set_scores(model, heldout_set, pareto_alpha)
        partial = out / f".{MODEL_FILE}.tmp"
        model.save_model(str(partial))
        os.replace(partial, out / MODEL_FILE)
    model_path = out / MODEL_FILE
    metrics = {
        "labels": ["high", "low"],
        "model": {"file": MODEL_FILE, "bytes": model_path.stat().st_size, "sha256": sha256_file(model_path),
                  "words": len(model.words), "dim": config.dim, "bucket": config.bucket},
        "cv": cv,
        "heldout": {**heldout, "fraction_of_windows": len(test) / len(examples), "groups": len(held)},
        "heldout_set": {"path": str(heldout_path), "sha256": sha256_file(heldout_path), **heldout_set_metrics},
        "examples": {"windows": len(examples), "window_chars": config.window_chars,
                     "per_label": dict(sorted(Counter(e.label for e in examples).items())),
                     "per_source": counts_per_source(examples)},
        "data": {"positives": [{"path": str(p), "sha256": sha256_file(p)} for p in positives],
                 "negatives": [{"path": str(p), "sha256": sha256_file(p)} for p in negatives]},
        "config": asdict(config),
        "training_seconds": {"model": round(fit_seconds, 2), "total": round(time.perf_counter() - started, 2)},
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def summary(metrics: dict) -> str:
    cv, held, held_set, model = metrics["cv"], metrics["heldout"], metrics["heldout_set"], metrics["model"]
    return "\n".join([
        f"windows: {metrics['examples']['windows']} ({metrics['examples']['window_chars']} characters each, "
        f"classes balanced)",
        f"cv accuracy ({cv['folds']} folds by group): {cv['accuracy_mean']:.4f} +- {cv['accuracy_std']:.4f} "
        f"(folds {', '.join(f'{a:.3f}' for a in cv['accuracy_per_fold'])}); precision {cv['precision']:.4f}, "
        f"recall {cv['recall']:.4f}",
        f"length-only baseline: {cv['length_baseline']['accuracy_mean']:.4f}",
        f"held-out accuracy: {held['accuracy']:.4f} on {held['windows']} windows of {held['groups']} groups",
        f"held-out set (sources never trained on): ROC AUC {held_set['roc_auc']:.4f}, accuracy "
        f"{held_set['accuracy']:.4f}, at the Pareto filter's threshold ({held_set['pareto_threshold']:.3f}) "
        f"{held_set['accuracy_at_pareto_threshold']:.4f}, on {held_set['windows']} windows of {held_set['groups']} groups",
        f"model: {model['bytes'] / 1e6:.1f} MB ({model['words']} words, dim {model['dim']}, "
        f"bucket {model['bucket']}), trained in {metrics['training_seconds']['model']:.1f} s "
        f"({metrics['training_seconds']['total']:.1f} s with cross-validation)",
    ])


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataprep train-classifier", description=HELP,
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help=f"folder for {MODEL_FILE} and {METRICS_FILE}")
    parser.add_argument("--positives", nargs="+", type=Path, action="extend", metavar="PATH",
                        help="curated text: JSONL(.gz) of {text, source, group} or plain text files "
                             "(default: the shipped positives)")
    parser.add_argument("--negatives", nargs="+", type=Path, action="extend", metavar="PATH",
                        help="extracted crawl text, same forms (default: the shipped negatives)")
    parser.add_argument("--heldout", type=Path, default=HELDOUT_FILE, metavar="PATH",
                        help="the held-out set, JSONL(.gz) of {label, text, source, group}; its groups are never "
                             "trained on (default: the shipped one)")
    parser.add_argument("--config", help="YAML whose `classifier:` section overrides ClassifierConfig")
    return parser


def train_command(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    default_positives, default_negatives = default_paths()
    positives = args.positives or default_positives
    negatives = args.negatives or default_negatives
    try:
        config = DataprepConfig.load(args.config).classifier
        for path in [*positives, *negatives, args.heldout]:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such training file")
        metrics = train_classifier(args.out, positives, negatives, config, args.heldout,
                                   DataprepConfig.load(args.config).quality.pareto_alpha)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"dataprep train-classifier: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary(metrics))
    print(f"-> {args.out / MODEL_FILE}, {args.out / METRICS_FILE}")
    return 0
