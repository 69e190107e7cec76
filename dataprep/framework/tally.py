"""A Tally: what stats.json's `extra` reports about a unit of work's rows, beyond the writer's counts.

A stage adds to named counters as its rows go by (`count("languages", "en")`), names faulty rows
(`fault(...)`: the first MAX_LISTED_FAULTS are kept, all are counted by the writer) and the framework
lists unreadable files. Tallies of several units add up (`merge`), in any order.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_LISTED_FAULTS = 100  # faulty rows named in stats.json


@dataclass
class Tally:
    rows: int = 0  # rows the unit gave (source stages: the input rows to account for)
    counters: dict[str, dict[Hashable, int]] = field(default_factory=dict)
    faults: list[tuple[str, str, str]] = field(default_factory=list)  # (origin, reason, detail)
    bad_files: list[str] = field(default_factory=list)

    def count(self, counter: str, key: Hashable = None, amount: int = 1) -> None:
        values = self.counters.setdefault(counter, {})
        values[key] = values.get(key, 0) + amount

    def total(self, counter: str, key: Hashable = None) -> int:
        return self.counters.get(counter, {}).get(key, 0)

    def fault(self, origin: str, reason: str, detail: str) -> None:
        if len(self.faults) < MAX_LISTED_FAULTS:
            self.faults.append((origin, reason, detail))

    def merge(self, other: Tally) -> None:
        self.rows += other.rows
        for name, values in other.counters.items():
            for key, n in values.items():
                self.count(name, key, n)
        self.faults.extend(other.faults)
        self.bad_files.extend(other.bad_files)

    def histogram(self, counter: str) -> dict[str, int]:
        """{key: count}, most frequent first (ties by key); None shown as "unknown"."""
        merged: dict[str, int] = {}
        for key, n in self.counters.get(counter, {}).items():
            name = "unknown" if key is None else str(key)
            merged[name] = merged.get(name, 0) + n
        return dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))

    def listed_faults(self) -> list[dict]:
        """The first faults in origin order ("a.warc.gz@99" before "a.warc.gz@100"), as stats.json lists them."""
        ordered = sorted(self.faults, key=lambda f: _natural_key(f[0]))[:MAX_LISTED_FAULTS]
        return [{"origin": o, "reason": r, "detail": d} for o, r, d in ordered]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "counters": {name: [[k, n] for k, n in values.items()]
                                                for name, values in self.counters.items()},
                "faults": [list(f) for f in self.faults], "bad_files": list(self.bad_files)}

    @classmethod
    def from_dict(cls, d: dict) -> Tally:
        return cls(d["rows"], {name: {k: n for k, n in values} for name, values in d["counters"].items()},
                   [tuple(f) for f in d["faults"]], list(d["bad_files"]))


def _natural_key(origin: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", origin)]
