"""Connected components of a sparse graph in Spark, never on one machine: alternating large-star and
small-star rounds (Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014).

Each round keeps the graph's connectivity and points nodes at smaller ones; it ends when the edges
form disjoint stars (every node that has an edge to a smaller node has exactly one, to a node with
none), whose centres are then the smallest node of their component. Every round's edges are
checkpointed, so the query plan (lineage) stays one round long whatever the number of rounds.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

Checkpoint = Callable[[DataFrame], DataFrame]
MAX_ROUNDS = 64  # rounds are O(log n); far more means a bug, not a big graph


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node u links every larger neighbour to the smallest of u and its neighbours."""
    both = edges.select("u", "v").union(edges.select(F.col("v").alias("u"), F.col("u").alias("v")))
    smallest = both.groupBy("u").agg(F.least(F.min("v"), F.col("u")).alias("m"))
    return (
        both.join(smallest, "u")
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("u"), F.col("m").alias("v"))
        .distinct()
    )


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node u links itself and every smaller neighbour to the smallest of them."""
    down = edges.select(F.greatest("u", "v").alias("u"), F.least("u", "v").alias("v")).where(F.col("u") != F.col("v"))
    smallest = down.groupBy("u").agg(F.min("v").alias("m"))
    joined = down.join(smallest, "u")
    neighbours = joined.where(F.col("v") != F.col("m")).select(F.col("v").alias("u"), F.col("m").alias("v"))
    selves = smallest.select("u", F.col("m").alias("v"))
    return neighbours.union(selves).distinct()


def _is_stars(edges: DataFrame) -> bool:
    """True when every edge (u, v), u > v, is the only one of u, and v has none of its own."""
    several = edges.groupBy("u").count().where(F.col("count") > 1).select("u")
    chained = edges.select("u").join(edges.select(F.col("v").alias("u")), "u", "left_semi")
    return several.union(chained).isEmpty()


def connected_components(edges: DataFrame, checkpoint: Checkpoint) -> DataFrame:
    """(u, v) edges of an undirected graph -> (node, component): every node that has an edge, and the
    smallest node of its component. Node ids are any comparable type (here doc_id strings). `edges`
    should be checkpointed already (the first round reads it twice)."""
    current = edges.select(F.col("u"), F.col("v")).where(F.col("u") != F.col("v"))
    for _ in range(MAX_ROUNDS):
        current = checkpoint(_small_star(_large_star(current)))
        if _is_stars(current):
            break
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    leaves = current.select(F.col("u").alias("node"), F.col("v").alias("component"))
    centres = current.select(F.col("v").alias("node"), F.col("v").alias("component")).distinct()
    return leaves.union(centres)
