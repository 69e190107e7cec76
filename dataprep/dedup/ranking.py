"""Which document of a duplicate group survives: the highest-priority source, then the earliest
origin (file name, then record offset or row number as a number), then the smallest doc_id."""

from __future__ import annotations

from collections.abc import Sequence


def origin_parts(origin: str) -> tuple[str, int]:
    """"CC-0001.warc.gz@1234" -> ("CC-0001.warc.gz", 1234); "wiki.jsonl:17" -> ("wiki.jsonl", 17).

    Split at the last "@" or ":"; an origin without a number after it ranks as number -1 of its name."""
    cut = max(origin.rfind("@"), origin.rfind(":"))
    if cut >= 0 and origin[cut + 1 :].isdigit():
        return origin[:cut], int(origin[cut + 1 :])
    return origin, -1


def source_rank(source: str, priority: Sequence[str]) -> int:
    """Position in the priority list; unlisted sources all rank after the listed ones (then by name)."""
    try:
        return list(priority).index(source)
    except ValueError:
        return len(priority)


def rank_key(source: str, origin: str, doc_id: str, priority: Sequence[str], earlier: bool = False) -> tuple:
    """Sort key of a document: the smallest key of a group is its representative. Documents of an
    earlier dedup output (`--against`) come before all new ones."""
    name, number = origin_parts(origin)
    return (0 if earlier else 1, source_rank(source, priority), source, name, number, doc_id)
