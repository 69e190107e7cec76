"""stats.json of a stage folder: every input row is kept or dropped for exactly one reason, and the funnel says so.

    {"stage": ..., "version": 1, "in": {"rows", "bytes"}, "kept": {"rows", "bytes"},
     "dropped": {reason: rows, ... in the stage's order}, "out": {"rows", "bytes", "tokens"}, "extra": {...}}

in.rows == kept.rows + sum(dropped) always (check() raises AccountingError otherwise); a kept input row
may become several output rows (out.rows). docs/contracts.md, "stats.json", says what each figure counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

STATS_VERSION = 1


class AccountingError(RuntimeError):
    """A stage lost or invented rows: in.rows != kept.rows + sum(dropped)."""


@dataclass
class StageStats:
    stage: str
    in_rows: int = 0
    in_bytes: int = 0
    kept_rows: int = 0
    kept_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    out_rows: int = 0
    out_bytes: int = 0
    out_tokens: int | None = None
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        dropped = sum(self.dropped.values())
        if self.in_rows != self.kept_rows + dropped:
            raise AccountingError(
                f"{self.stage}: in.rows {self.in_rows} != kept.rows {self.kept_rows} + dropped {dropped} "
                f"({self.dropped})"
            )

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "version": STATS_VERSION,
            "in": {"rows": self.in_rows, "bytes": self.in_bytes},
            "kept": {"rows": self.kept_rows, "bytes": self.kept_bytes},
            "dropped": dict(self.dropped),  # in the stage's order of reasons
            "out": {"rows": self.out_rows, "bytes": self.out_bytes, "tokens": self.out_tokens},
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> StageStats:
        return cls(
            stage=d["stage"],
            in_rows=d["in"]["rows"],
            in_bytes=d["in"]["bytes"],
            kept_rows=d["kept"]["rows"],
            kept_bytes=d["kept"]["bytes"],
            dropped=dict(d["dropped"]),
            out_rows=d["out"]["rows"],
            out_bytes=d["out"]["bytes"],
            out_tokens=d["out"].get("tokens"),
            extra=d.get("extra", {}),
        )

    @classmethod
    def combined(cls, parts: list[StageStats], stage: str) -> StageStats:
        """The sum of several stages' stats (the same stage on several sources); reasons in first-seen order."""
        total = cls(stage=stage, out_tokens=None)
        for p in parts:
            total.in_rows += p.in_rows
            total.in_bytes += p.in_bytes
            total.kept_rows += p.kept_rows
            total.kept_bytes += p.kept_bytes
            total.out_rows += p.out_rows
            total.out_bytes += p.out_bytes
            for reason, n in p.dropped.items():
                total.dropped[reason] = total.dropped.get(reason, 0) + n
        return total

    def funnel_table(self) -> str:
        """A plain-text funnel: input, each drop reason in the stage's order, kept, output."""
        width = max([len(r) + 2 for r in self.dropped] + [12])  # "- " before each reason

        def line(label: str, rows: int, nbytes: int | None = None) -> str:
            share = f"{100.0 * rows / self.in_rows:6.1f}%" if self.in_rows else "      -"
            size = f"  {_human_bytes(nbytes)}" if nbytes is not None else ""
            return f"  {label:<{width}} {rows:>10,} {share}{size}"

        lines = [f"{self.stage} funnel", line("in", self.in_rows, self.in_bytes)]
        lines += [line(f"- {reason}", n) for reason, n in self.dropped.items()]
        lines.append(line("kept", self.kept_rows, self.kept_bytes))
        if self.out_rows != self.kept_rows:
            lines.append(line("out rows", self.out_rows, self.out_bytes))
        return "\n".join(lines)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
