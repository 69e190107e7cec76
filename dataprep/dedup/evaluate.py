"""Dedup judged against a sample crawl's truth (samplecrawl): the crawl plants groups of copies
(an original page, its recrawls and its edited near-duplicates on other sites) and says which record
is which; everything else shares less than half its text with any other page.

Similarity is measured on the stage's own shingles of the documents it was given (the extracted text),
so the figures judge dedup, not extraction:
- precision: of the documents dedup dropped, the share that are an exact copy (normalised text) of
  their `duplicate_of`, or belong to its group and have a Jaccard similarity at or over the threshold
  with some member of it;
- recall by similarity: of the pairs of distinct texts of one group, the share that end in one
  cluster, for pairs at or over `high` (0.9) and for pairs in [threshold, high), the latter with the
  share the LSH curve 1 - (1 - s^rows)^bands predicts for them (verification cannot raise it; clusters
  can) and that prediction's standard deviation;
- groups that lost all their members (a false merge would do that).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from dataprep.dedup.normalize import normalize_text
from dataprep.dedup.shingles import shingles
from dataprep.dedup.verify import at_least, jaccard_counts


@dataclass
class Document:
    doc_id: str
    origin: str
    text: str | None
    drop_reason: str | None = None
    duplicate_of: str | None = None


@dataclass
class Evaluation:
    dropped: int = 0
    dropped_correctly: int = 0
    wrongly_dropped: list[str] = field(default_factory=list)
    high_pairs: int = 0
    high_found: int = 0
    mid_pairs: int = 0
    mid_found: int = 0
    mid_expected: float = 0.0  # the LSH curve's expected count of found mid pairs
    mid_variance: float = 0.0  # and its variance (pairs taken as independent draws)
    groups: int = 0
    groups_lost: int = 0
    missed_high: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.dropped_correctly / self.dropped if self.dropped else 1.0

    @property
    def recall_high(self) -> float:
        return self.high_found / self.high_pairs if self.high_pairs else 1.0

    @property
    def recall_mid(self) -> float:
        return self.mid_found / self.mid_pairs if self.mid_pairs else 1.0

    @property
    def recall_mid_predicted(self) -> float:
        return self.mid_expected / self.mid_pairs if self.mid_pairs else 1.0

    def summary(self) -> dict:
        return {
            "dropped": self.dropped,
            "precision": round(self.precision, 4),
            "pairs_over_high": self.high_pairs,
            "recall_over_high": round(self.recall_high, 4),
            "pairs_threshold_to_high": self.mid_pairs,
            "recall_threshold_to_high": round(self.recall_mid, 4),
            "lsh_curve_threshold_to_high": round(self.recall_mid_predicted, 4),
            "lsh_curve_sd_threshold_to_high": round(self.mid_variance**0.5 / self.mid_pairs, 4) if self.mid_pairs else 0.0,
            "groups": self.groups,
            "groups_lost": self.groups_lost,
        }


def truth_groups(truth: dict) -> dict[str, int]:
    """origin -> group (the original page's number) for every response of a group of copies."""
    responses = [r for r in truth["records"] if r["type"] == "response"]
    copied = {r["duplicate_of"]["page"] for r in responses if "duplicate_of" in r}
    group_of = {}
    for r in responses:
        if "duplicate_of" in r:
            group_of[r["origin"]] = r["duplicate_of"]["page"]
        elif r["page"] in copied:
            group_of[r["origin"]] = r["page"]
    return group_of


def lsh_probability(s: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - s**rows) ** bands


def evaluate(
    documents: Iterable[Document],
    group_of_origin: dict[str, int],
    threshold: float = 0.8,
    high: float = 0.9,
    bands: int = 20,
    rows: int = 13,
    shingle_words: int = 5,
) -> Evaluation:
    """`group_of_origin`: the group of copies of each document that has copies (truth_groups(truth))."""
    docs = {d.doc_id: d for d in documents}
    group = {d.doc_id: group_of_origin.get(d.origin) for d in docs.values()}
    members: dict[int, list[str]] = {}
    for doc_id, g in group.items():
        if g is not None:
            members.setdefault(g, []).append(doc_id)
    shingle_sets = {doc_id: shingles(docs[doc_id].text, shingle_words) for ids in members.values() for doc_id in ids}
    similarity = {}
    for ids in members.values():
        for a, b in itertools.combinations(sorted(ids), 2):
            if shingle_sets[a] == shingle_sets[b]:
                similarity[(a, b)] = (1.0, True)
                continue
            inter, union = jaccard_counts(shingle_sets[a], shingle_sets[b])
            similarity[(a, b)] = (inter / union if union else 0.0, at_least(inter, union, threshold))

    def cluster(doc_id: str) -> str:
        return docs[doc_id].duplicate_of or doc_id

    result = Evaluation()
    for d in docs.values():
        if d.drop_reason is None:
            continue
        result.dropped += 1
        g = group[d.doc_id]
        partners = [m for m in members.get(g, []) if m != d.doc_id]
        similar = any(similarity[tuple(sorted((d.doc_id, m)))][1] for m in partners)
        rep = docs.get(d.duplicate_of)
        exact_copy = rep is not None and normalize_text(rep.text) == normalize_text(d.text)
        if exact_copy or (g is not None and group.get(d.duplicate_of) == g and similar):
            result.dropped_correctly += 1
        else:
            result.wrongly_dropped.append(d.doc_id)
    # Recall counts pairs of distinct texts once: copies with the same shingles (recrawls, verbatim
    # copies) are one text, found by exact dedup, and would count the same near-duplicate pair twice.
    counted = set()
    for (a, b), (s, over) in similarity.items():
        key = tuple(sorted((frozenset(shingle_sets[a]), frozenset(shingle_sets[b])), key=hash))
        if s == 1.0 or key in counted:
            continue
        counted.add(key)
        found = cluster(a) == cluster(b)
        if s >= high:
            result.high_pairs += 1
            result.high_found += found
            if not found:
                result.missed_high.append((a, b, s))
        elif over:
            result.mid_pairs += 1
            result.mid_found += found
            p = lsh_probability(s, bands, rows)
            result.mid_expected += p
            result.mid_variance += p * (1 - p)
    result.groups = len(members)
    result.groups_lost = sum(all(docs[m].drop_reason is not None for m in ids) for ids in members.values())
    return result
