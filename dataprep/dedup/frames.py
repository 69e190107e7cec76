"""The dedup stage's dataflow in Spark: exact dedup, LSH candidates, verification, connected
components, representatives. Every step is a shuffle, join or aggregation over the cluster; nothing
gathers documents, signatures or pairs on the driver (it only receives counts for stats.json).

1. keys (keys.py): per document the normalised URL, the text hash, the rank fields and the signature,
   computed once and checkpointed. Documents of earlier outputs (`against`) bring their signature.
2. exact dedup: among documents with the same normalised URL all but the best-ranked go
   (`duplicate_url`); among the rest, the same for the text hash (`duplicate_text`).
3. LSH: each remaining document with shingles is put in one bucket per band (`bands` hashed keys of
   `rows_per_band` values). Buckets of one document are dropped as soon as buckets are formed. In a
   bucket, members are numbered in doc_id order (a hash order: a random sample) and the first
   `bucket_anchors` are its anchors; a candidate pair is an anchor and a later member. So a bucket of up
   to anchors + 1 documents yields all its pairs, and a bucket of n > anchors + 1 documents n * anchors
   pairs instead of n^2 / 2 (a page template shared by a million pages costs millions of pairs, not
   10^12); its true duplicates still meet through their anchors here and through their other bands.
   Pairs found in several bands are verified once.
4. verification: the exact Jaccard similarity of the two shingle sets (verify.py), kept at or over
   `jaccard_threshold`.
5. connected components (components.py) of the verified pairs; each component's representative is its
   best-ranked member (ranking.py), and so is the representative of every exact duplicate that leads
   to it: `duplicate_of` always names a document that is kept (or one of an earlier output), never one
   that is itself dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dataprep.config import DedupConfig
from dataprep.dedup.components import Checkpoint, connected_components
from dataprep.dedup.keys import KEYS_DDL, MINHASH, KeyMaker
from dataprep.dedup.shingles import shingles
from dataprep.dedup.verify import at_least, jaccard_counts
from dataprep.framework.spark_rows import Tallies, partition_unit
from dataprep.framework.tally import Tally

DUPLICATE_URL = "duplicate_url"
DUPLICATE_TEXT = "duplicate_text"
NEAR_DUPLICATE = "near_duplicate"
REASONS = [DUPLICATE_URL, DUPLICATE_TEXT, NEAR_DUPLICATE]  # the order they apply in
DUPLICATE_OF = "duplicate_of"
CLUSTER_ID = "cluster_id"
RANK_FIELDS = ("tier", "priority", "source", "origin_name", "origin_number", "doc_id")


@dataclass
class DedupResult:
    """`assignments`: one row per document of the inputs and of the earlier outputs: doc_id, tier,
    drop_reason, duplicate_of, cluster_id, minhash (checkpointed). `counts`: figures for stats.json."""

    assignments: DataFrame
    counts: dict


def rank(prefix: str = "") -> Column:
    """The rank as a struct: Spark orders structs field by field, so min() is the representative."""
    return F.struct(*[F.col(f"{prefix}{f}").alias(f) for f in RANK_FIELDS])


def document_keys(documents: DataFrame, config: DedupConfig, priority: Sequence[str], earlier: bool) -> DataFrame:
    columns = ["doc_id", "source", "url", "origin", "text"] + ([MINHASH] if earlier else [])
    return documents.select(*columns).mapInArrow(KeyMaker(config, priority, earlier), KEYS_DDL)


def exact_duplicates(keys: DataFrame) -> DataFrame:
    """keys + `exact_reason` (duplicate_url, duplicate_text or null) and `exact_rep`: the doc_id of the
    document, kept by exact dedup, that stands for this one (itself when kept)."""
    with_rank = keys.withColumn("_rank", rank())
    url_best = F.min("_rank").over(Window.partitionBy("url_key"))
    by_url = with_rank.withColumn(
        "_url_rep", F.when(F.col("url_key").isNull(), F.col("_rank")).otherwise(url_best)
    )
    url_kept = by_url.where(F.col("_url_rep") == F.col("_rank"))
    by_text = url_kept.withColumn("_text_rep", F.min("_rank").over(Window.partitionBy("text_key")))
    url_survivors = by_text.select(
        "doc_id",
        F.when(F.col("_text_rep") != F.col("_rank"), F.lit(DUPLICATE_TEXT)).alias("exact_reason"),
        F.col("_text_rep.doc_id").alias("exact_rep"),
    )
    url_dropped = (
        by_url.where(F.col("_url_rep") != F.col("_rank"))
        .select("doc_id", F.col("_url_rep.doc_id").alias("_via"))
        .join(url_survivors.select(F.col("doc_id").alias("_via"), "exact_rep"), "_via")
        .select("doc_id", F.lit(DUPLICATE_URL).alias("exact_reason"), "exact_rep")
    )
    return keys.join(url_survivors.union(url_dropped), "doc_id")


def candidate_pairs(survivors: DataFrame, config: DedupConfig) -> DataFrame:
    """(a, b), a < b: pairs of documents that share a band bucket (see the module docstring)."""
    buckets = survivors.where(F.col("bands").isNotNull()).select(
        "doc_id", F.posexplode("bands").alias("band", "key")
    )
    bucket = Window.partitionBy("band", "key")
    members = (
        buckets.withColumn("size", F.count(F.lit(1)).over(bucket))
        .where(F.col("size") > 1)  # most buckets hold one document: gone before any pair is formed
        .withColumn("n", F.row_number().over(bucket.orderBy("doc_id")))
    )
    anchors = members.where(F.col("n") <= config.bucket_anchors).select(
        "band", "key", F.col("doc_id").alias("anchor"), F.col("n").alias("anchor_n")
    )
    return (
        members.join(anchors, ["band", "key"])
        .where(F.col("n") > F.col("anchor_n"))
        .select(F.least("anchor", "doc_id").alias("a"), F.greatest("anchor", "doc_id").alias("b"))
        .distinct()
    )


class Verifier:
    """mapInArrow function: (a, b, text_a, text_b) -> the pairs whose shingle sets' Jaccard similarity
    is at or over the threshold; counts pairs in and out per partition."""

    def __init__(self, config: DedupConfig, tallies: Tallies):
        self.threshold = config.jaccard_threshold
        self.size = config.shingle_words
        self.tallies = tallies

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        tally = Tally()
        last_a, last_set = None, set()
        for batch in batches:
            keep_a, keep_b = [], []
            rows = zip(*(batch.column(c).to_pylist() for c in ("a", "b", "text_a", "text_b")))
            for a, b, text_a, text_b in rows:
                if a != last_a:  # pairs come sorted by a: its shingles are made once
                    last_a, last_set = a, shingles(text_a, self.size)
                inter, union = jaccard_counts(last_set, shingles(text_b, self.size))
                verified = at_least(inter, union, self.threshold)
                tally.count("pairs", "verified" if verified else "rejected")
                if verified:
                    keep_a.append(a)
                    keep_b.append(b)
            yield pa.RecordBatch.from_pydict({"u": keep_a, "v": keep_b}, schema=_EDGE_SCHEMA)
        self.tallies.record(partition_unit(), tally)


_EDGE_SCHEMA = pa.schema([("u", pa.string()), ("v", pa.string())])


def verified_pairs(pairs: DataFrame, texts: DataFrame, config: DedupConfig, tallies: Tallies) -> DataFrame:
    text_a = texts.select(F.col("doc_id").alias("a"), F.col("text").alias("text_a"))
    text_b = texts.select(F.col("doc_id").alias("b"), F.col("text").alias("text_b"))
    joined = pairs.join(text_a, "a").join(text_b, "b").select("a", "b", "text_a", "text_b")
    return joined.sortWithinPartitions("a").mapInArrow(Verifier(config, tallies), "u string, v string")


def representatives(components: DataFrame, keys: DataFrame) -> DataFrame:
    """(node, component) -> (doc_id, fuzzy_rep): each node's component's best-ranked member."""
    ranked = components.join(keys.select(F.col("doc_id").alias("node"), rank().alias("_rank")), "node")
    best = ranked.groupBy("component").agg(F.min("_rank").alias("_best"))
    return ranked.join(best, "component").select(
        F.col("node").alias("doc_id"), F.col("_best.doc_id").alias("fuzzy_rep")
    )


def default_checkpoint(spark: SparkSession) -> Checkpoint:
    """A reliable checkpoint where the session has a checkpoint folder (set one on a cluster:
    spark.checkpoint.dir), else a local one (kept by the executors): either way the lineage is cut."""
    if spark.sparkContext.getCheckpointDir():
        return lambda df: df.checkpoint(eager=True)
    return lambda df: df.localCheckpoint(eager=True)


def deduplicate(
    documents: DataFrame,
    config: DedupConfig,
    priority: Sequence[str],
    against: DataFrame | None = None,
    checkpoint: Checkpoint | None = None,
) -> DedupResult:
    """Decide every document's fate. `documents` and `against` have the document columns (`against`
    also `minhash`); `against`'s documents come first in every ranking and are not outputs."""
    spark = documents.sparkSession
    # The shuffles' partition count: a fixed one, never Spark's 200 for any size (outputs do not depend on
    # it). Set on the stage's own session (the runner gives each stage one), so no other stage sees it.
    spark.conf.set("spark.sql.shuffle.partitions", str(config.partitions or 2 * spark.sparkContext.defaultParallelism))
    checkpoint = checkpoint or default_checkpoint(spark)
    keys = document_keys(documents, config, priority, earlier=False)
    if against is not None:
        keys = keys.union(document_keys(against, config, priority, earlier=True))
    # Made once: exact dedup reads the keys several times, and each read would run the Python tasks again.
    keys = checkpoint(exact_duplicates(checkpoint(keys)))

    survivors = keys.where(F.col("exact_reason").isNull())
    tallies = Tallies(spark)
    edges = checkpoint(verified_pairs(candidate_pairs(survivors, config), _texts(documents, against), config, tallies))
    pairs = tallies.merged()
    if edges.isEmpty():
        fuzzy = spark.createDataFrame([], "doc_id string, fuzzy_rep string")
    else:
        fuzzy = representatives(connected_components(edges, checkpoint), keys)

    final_rep = F.coalesce(F.col("fuzzy_rep"), F.col("exact_rep"))
    decided = (
        keys.join(fuzzy.withColumnRenamed("doc_id", "exact_rep"), "exact_rep", "left")
        .withColumn("_rep", final_rep)
        .withColumn("_size", F.count(F.lit(1)).over(Window.partitionBy("_rep")))
        .select(
            "doc_id",
            "tier",
            F.when(F.col("exact_reason").isNotNull(), F.col("exact_reason"))
            .when(F.col("_rep") != F.col("doc_id"), F.lit(NEAR_DUPLICATE))
            .alias("drop_reason"),
            F.when(F.col("_rep") != F.col("doc_id"), F.col("_rep")).alias(DUPLICATE_OF),
            F.when(F.col("_size") > 1, F.col("_rep")).alias(CLUSTER_ID),
            MINHASH,
        )
    )
    assignments = checkpoint(decided)
    counts = {
        "candidate_pairs": pairs.total("pairs", "verified") + pairs.total("pairs", "rejected"),
        "verified_pairs": pairs.total("pairs", "verified"),
        **_cluster_counts(assignments),
    }
    return DedupResult(assignments, counts)


def _texts(documents: DataFrame, against: DataFrame | None) -> DataFrame:
    texts = documents.select("doc_id", "text")
    return texts if against is None else texts.union(against.select("doc_id", "text"))


def _cluster_counts(assignments: DataFrame) -> dict:
    """Clusters (of two or more documents) and how many there are of each size: a few numbers."""
    sizes = (
        assignments.where(F.col(CLUSTER_ID).isNotNull())
        .groupBy(CLUSTER_ID)
        .count()
        .groupBy(F.col("count").alias("size"))
        .count()
        .orderBy("size")
        .collect()
    )
    histogram = {str(r["size"]): r["count"] for r in sizes}
    return {"clusters": sum(histogram.values()), "cluster_sizes": histogram}


def with_assignments(documents: DataFrame, assignments: DataFrame) -> DataFrame:
    """The input documents with drop_reason, duplicate_of, cluster_id and minhash."""
    new = assignments.where(F.col("tier") == 1).drop("tier")
    return documents.join(new, "doc_id")


def signature_values(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4").astype(np.uint32)
