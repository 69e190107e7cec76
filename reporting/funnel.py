"""The funnel across stages, from their stats.json: one table (text for `inspect` and `funnel`, the
report's HTML/Markdown table) and one plot (per stage its input rows, kept then dropped by reason, and
the text left beside it).

    python -m reporting funnel out/documents/extract out/documents/cleanup --png funnel.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blending.stages import find_stage_folders
from reporting.collect import Stage, read_json, stages_of
from reporting.figures import KEPT_COLOR, pyplot, reason_colors, save
from reporting.units import human, mb

HEADER = ["stage", "rows in", "kept", "dropped", "rows out", "bytes in", "bytes out", "tokens out"]


@dataclass
class FunnelTable:
    header: list[str]
    rows: list[list[str]]
    kinds: list[str]  # per row: "total" (a stage), "reason" (a drop reason), "unused" (the reasons that dropped none)

    @property
    def classes(self) -> list[str]:
        """The rows' classes in the report's HTML (a stage's row in bold, its reasons indented)."""
        return ["reason" if kind == "unused" else kind for kind in self.kinds]

    def text(self) -> str:
        """Plain text columns: labels left-aligned, figures right-aligned, reasons indented; the reasons
        that dropped none on one line of their own, outside the columns."""
        rows = [self.header] + [r for r, kind in zip(self.rows, self.kinds) if kind != "unused"]
        widths = [max(len(r[i]) + 2 for r in rows) for i in range(len(self.header))]
        lines = []
        for row, kind in zip([self.header, *self.rows], ["header", *self.kinds]):
            if kind == "unused":
                lines.append(f"  {row[0]}: {row[3]}")
            else:
                label = f"  {row[0]}" if kind == "reason" else row[0]
                lines.append((label.ljust(widths[0]) + "".join(c.rjust(w) for c, w in zip(row[1:], widths[1:]))).rstrip())
        return "\n".join(lines)


def bytes_per_token(stages: list[Stage]) -> float | None:
    """Text bytes per token of the blend: the rate at which earlier stages' text becomes tokens."""
    for stage in stages:
        tokens = stage.stats["out"].get("tokens")
        if tokens and stage.stats["kept"]["bytes"]:
            return stage.stats["kept"]["bytes"] / tokens
    return None


def funnel_table(stages: list[Stage]) -> FunnelTable:
    """Per stage: rows in, kept, dropped, rows out, bytes in and out, tokens out (estimated at the blend's
    bytes per token, marked ≈, where the stage counted none); below it a row per drop reason with its
    share of the rows in, the reasons that dropped nothing on one row."""
    per_token = bytes_per_token(stages)
    rows, kinds = [], []
    for stage in stages:
        st = stage.stats
        tokens = st["out"].get("tokens")
        token_text = f"{tokens:,}" if tokens else (f"≈{human(st['out']['bytes'] / per_token)}" if per_token else "-")
        rows.append([f"{stage.label} ({stage.name})", f"{st['in']['rows']:,}", f"{st['kept']['rows']:,}",
                     f"{stage.dropped:,}", f"{st['out']['rows']:,}", mb(st["in"]["bytes"]), mb(st["out"]["bytes"]),
                     token_text])
        kinds.append("total")
        for reason, n in st["dropped"].items():
            if n:
                share = f"{n / st['in']['rows']:.1%}" if st["in"]["rows"] else "-"
                rows.append([f"− {reason}", "", "", f"{n:,} ({share})", "", "", "", ""])
                kinds.append("reason")
        unused = [reason for reason, n in st["dropped"].items() if not n]
        if unused:
            rows.append([f"− {', '.join(unused)}", "", "", "0 each", "", "", "", ""])
            kinds.append("unused")
    return FunnelTable(HEADER, rows, kinds)


def reasons_of(stages: list[Stage]) -> list[str]:
    """Every reason that dropped a row, in the order the stages list them."""
    return list(dict.fromkeys(r for s in stages for r, n in s.stats["dropped"].items() if n))


def plot_funnel(stages: list[Stage], target: str | Path | BinaryIO) -> None:
    """Per stage a bar of its input rows: kept, then each drop reason; beside it, the text left."""
    plt = pyplot()
    reasons = reasons_of(stages)
    legend_rows = (len(reasons) + 1 + 3) // 4
    fig, (rows_ax, bytes_ax) = plt.subplots(1, 2, figsize=(11, 0.55 * len(stages) + 1.8 + 0.25 * legend_rows),
                                            gridspec_kw={"width_ratios": [3, 1.3]})
    y = list(range(len(stages)))[::-1]
    colors = reason_colors(reasons)
    widest = max([s.stats["in"]["rows"] for s in stages] + [1])
    for yi, stage in zip(y, stages):
        kept = stage.stats["kept"]["rows"]
        rows_ax.barh(yi, kept, color=KEPT_COLOR)
        left = kept
        for reason, n in stage.stats["dropped"].items():
            if n:
                rows_ax.barh(yi, n, left=left, color=colors[reason])
                left += n
        rows_ax.text(left, yi, f"  {kept:,} of {stage.stats['in']['rows']:,} kept", va="center", fontsize=8)
    rows_ax.set_yticks(y, [f"{s.label} ({s.name})" for s in stages], fontsize=8)
    rows_ax.set_xlim(0, widest * 1.35)
    rows_ax.set_xlabel("rows in")
    rows_ax.set_title("Rows per stage: kept, and dropped by reason", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in [KEPT_COLOR, *colors.values()]]
    fig.legend(handles, ["kept", *reasons], fontsize=8, loc="lower center", ncol=4, frameon=False)
    out_mb = [s.stats["out"]["bytes"] / 1e6 for s in stages]
    bytes_ax.barh(y, out_mb, color="#7aa974")
    per_token = bytes_per_token(stages)
    for yi, stage, size in zip(y, stages, out_mb):
        tokens = stage.stats["out"].get("tokens") or (stage.stats["out"]["bytes"] / per_token if per_token else None)
        bytes_ax.text(size, yi, f"  {size:.2f} MB" + (f", {human(tokens)} tok" if tokens else ""), va="center",
                      fontsize=7)
    bytes_ax.set_yticks(y, [""] * len(stages))
    bytes_ax.set_xlim(0, max(out_mb + [0.001]) * 1.9)
    bytes_ax.set_xlabel("MB out")
    bytes_ax.set_title("Text out (tokens for the blend)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * legend_rows, 1, 1))
    save(fig, target, layout=False)


def read_stages(folders: list[str | Path]) -> list[Stage]:
    """The stages of folders given by hand, in the order given, labelled by their path; a folder without
    stats.json (a run's folder) stands for the finished stage folders below it, in pipeline order."""
    stages = []
    for folder in folders:
        stats = read_json(Path(folder) / "stats.json")
        if stats and "in" in stats:
            stages.append(Stage(str(folder), stats))
            continue
        found = stages_of(find_stage_folders(folder), lambda path: str(path)) if Path(folder).is_dir() else []
        if not found:
            raise FileNotFoundError(f"{folder}: no stats.json with a stage's accounting in it or below it")
        stages += found
    return stages


def main(folders: list[str], png: str | None = None) -> int:
    stages = read_stages(folders)
    print(funnel_table(stages).text())
    if png:
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        plot_funnel(stages, png)
        print(f"funnel plot: {png}")
    return 0
