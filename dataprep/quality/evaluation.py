"""How good a classifier is, measured without leakage: folds and the held-out split are made of whole
groups (a book, a speech, an article's web host), so no window of a held-out page or book was seen in
training. Also the length-only baseline a classifier must beat."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from dataprep.quality.corpus import HIGH, LOW, Example, stable_hash
from dataprep.quality.pareto import lomax

Predict = Callable[[list[Example]], list[str]]


def group_folds(examples: Sequence[Example], folds: int) -> dict[str, int]:
    """group -> fold: groups by decreasing size, each to the fold with the fewest windows so far (as
    scikit-learn's GroupKFold), ties broken by a hash of the group name."""
    sizes = Counter(e.group for e in examples)
    if len(sizes) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {folds} groups; the data has {len(sizes)}")
    load = [0] * folds
    assignment = {}
    for group in sorted(sizes, key=lambda g: (-sizes[g], stable_hash("fold", g))):
        fold = min(range(folds), key=lambda f: (load[f], f))
        assignment[group] = fold
        load[fold] += sizes[group]
    return assignment


def heldout_groups(examples: Sequence[Example], fraction: float) -> set[str]:
    """Whole groups, in a fixed hashed order, until they hold `fraction` of the windows."""
    sizes = Counter(e.group for e in examples)
    wanted, held, total = set(), 0, fraction * len(examples)
    for group in sorted(sizes, key=lambda g: stable_hash("heldout", g)):
        if held >= total:
            break
        wanted.add(group)
        held += sizes[group]
    return wanted


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict:
    """Accuracy, and precision / recall of the high-quality label, with the confusion matrix."""
    pairs = Counter(zip(truth, predicted))
    true_high, false_high, false_low = pairs[(HIGH, HIGH)], pairs[(LOW, HIGH)], pairs[(HIGH, LOW)]
    return {
        "accuracy": sum(pairs[(c, c)] for c in (HIGH, LOW)) / max(1, len(truth)),
        "precision": true_high / max(1, true_high + false_high),
        "recall": true_high / max(1, true_high + false_low),
        "confusion": {f"true_{t}": {f"predicted_{p}": pairs[(t, p)] for p in (HIGH, LOW)} for t in (HIGH, LOW)},
        "windows": len(truth),
    }


def words(example: Example) -> int:
    return len(example.text.split())


def length_rule(train: Sequence[Example]) -> Callable[[Example], str]:
    """The best single threshold on a window's word count (windows are equal in characters, so this is
    what length can still tell: word length), fitted on the training windows."""
    counts = sorted({words(e) for e in train})
    by_count = Counter((words(e), e.label) for e in train)
    best = (-1, 0, HIGH)
    for threshold in counts:
        at_or_above_high = sum(n for (c, label), n in by_count.items() if (c >= threshold) == (label == HIGH))
        for correct, above in ((at_or_above_high, HIGH), (len(train) - at_or_above_high, LOW)):
            if correct > best[0]:
                best = (correct, threshold, above)
    _, threshold, above = best
    below = LOW if above == HIGH else HIGH
    return lambda e: above if words(e) >= threshold else below


def cross_validate(examples: Sequence[Example], folds: int, fit_predict: Callable[[list[Example], list[Example]], list[str]]) -> dict:
    """Grouped k-fold cross-validation of a classifier and of the length-only baseline."""
    assignment = group_folds(examples, folds)
    per_fold, baseline, truth, predicted = [], [], [], []
    right_by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for fold in range(folds):
        train = [e for e in examples if assignment[e.group] != fold]
        test = [e for e in examples if assignment[e.group] == fold]
        guesses = fit_predict(train, test)
        per_fold.append(scores([e.label for e in test], guesses)["accuracy"])
        rule = length_rule(train)
        baseline.append(scores([e.label for e in test], [rule(e) for e in test])["accuracy"])
        truth += [e.label for e in test]
        predicted += guesses
        for e, guess in zip(test, guesses):
            right_by_source[e.source][0] += guess == e.label
            right_by_source[e.source][1] += 1
    pooled = scores(truth, predicted)
    return {
        "folds": folds,
        "grouped_by": "book / speech / Wikipedia article / web host",
        "accuracy_mean": statistics.mean(per_fold),
        "accuracy_std": statistics.pstdev(per_fold),
        "accuracy_per_fold": per_fold,
        "precision": pooled["precision"],
        "recall": pooled["recall"],
        "confusion": pooled["confusion"],
        "accuracy_per_source": {s: right / n for s, (right, n) in sorted(right_by_source.items())},
        "length_baseline": {
            "rule": "one threshold on the window's word count, fitted on the training folds",
            "accuracy_mean": statistics.mean(baseline),
            "accuracy_per_fold": baseline,
        },
    }


def roc_auc(truth: Sequence[str], high_scores: Sequence[float]) -> float:
    """The probability that a random high window scores above a random low one (ties count half): the
    Mann-Whitney statistic from average ranks."""
    values = np.asarray(high_scores, dtype=np.float64)
    is_high = np.asarray([label == HIGH for label in truth])
    n_high, n_low = int(is_high.sum()), int((~is_high).sum())
    if n_high == 0 or n_low == 0:
        raise ValueError("ROC AUC needs windows of both classes")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, tie_group, tie_counts = np.unique(values, return_inverse=True, return_counts=True)
    rank_sums = np.bincount(tie_group, weights=ranks)
    average_ranks = (rank_sums / tie_counts)[tie_group]
    return float((average_ranks[is_high].sum() - n_high * (n_high + 1) / 2) / (n_high * n_low))


def pareto_keep_threshold(alpha: float) -> float:
    """The score a document needs to be kept with probability 1/2 by the Pareto filter: kept when
    draw > 1 - score, so 1 - score is the draw's median: the Lomax quantile at 1/2."""
    return 1.0 - lomax(0.5, alpha)


def ranking_scores(truth: Sequence[str], high_scores: Sequence[float], alpha: float) -> dict:
    """ROC AUC, and accuracy where `high` means a score of at least 0.5 and where it means the Pareto
    filter keeps the window more often than not."""
    threshold = pareto_keep_threshold(alpha)
    at = {name: scores(truth, [HIGH if s >= cut else LOW for s in high_scores])
          for name, cut in (("argmax", 0.5), ("pareto", threshold))}
    return {
        "roc_auc": roc_auc(truth, high_scores),
        "accuracy": at["argmax"]["accuracy"],
        "precision": at["argmax"]["precision"],
        "recall": at["argmax"]["recall"],
        "pareto_threshold": threshold,
        "pareto_alpha": alpha,
        "accuracy_at_pareto_threshold": at["pareto"]["accuracy"],
        "windows": len(truth),
    }
