"""The pipeline's funnel across stages, from their stats.json files, as a table and a PNG.

    python -m dataprep.funnel out/documents/extract out/documents/cleanup --png funnel.png

(`python -m dataprep run` draws the funnel of all its stages itself.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dataprep.stats import StageStats


def load_stats(folders: list[str]) -> list[StageStats]:
    return [StageStats.from_dict(json.loads((Path(f) / "stats.json").read_text())) for f in folders]


def funnel_steps(stages: list[StageStats]) -> list[tuple[str, int, int]]:
    """(label, rows remaining, rows removed by this step): each stage's reasons in its order."""
    steps = []
    for i, stage in enumerate(stages):
        remaining = stage.in_rows
        if i == 0:
            steps.append((f"{stage.stage} input", remaining, 0))
        for reason, n in stage.dropped.items():
            remaining -= n
            steps.append((f"{stage.stage}: {reason}", remaining, n))
        if stage.out_rows != stage.kept_rows:
            steps.append((f"{stage.stage}: output rows", stage.out_rows, 0))
    return steps


def plot_funnel(stages: list[StageStats], png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Reasons that removed nothing stay in the table but would only crowd the picture.
    steps = [s for i, s in enumerate(funnel_steps(stages)) if i == 0 or s[2] or "output" in s[0]]
    labels = [s[0] for s in steps]
    remaining = [s[1] for s in steps]
    removed = [s[2] for s in steps]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(steps) + 1.2))
    y = range(len(steps))[::-1]
    ax.barh(y, remaining, color="#3b7dd8", label="documents remaining")
    ax.barh(y, removed, left=remaining, color="#e8a33d", label="removed at this step")
    for yi, r, d in zip(y, remaining, removed):
        ax.text(r + d, yi, f"  {r:,}" + (f"  (-{d:,})" if d else ""), va="center", fontsize=8)
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlabel("rows")
    ax.set_xlim(0, max(r + d for r, d in zip(remaining, removed)) * 1.25 or 1)
    ax.set_title("Curation funnel")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dataprep.funnel", description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="+", help="stage output folders, in pipeline order")
    parser.add_argument("--png", help="write the funnel plot here")
    args = parser.parse_args(argv)
    stages = load_stats(args.stages)
    for stage in stages:
        print(stage.funnel_table())
    if args.png:
        plot_funnel(stages, args.png)
        print(f"funnel plot: {args.png}")


if __name__ == "__main__":
    main()
