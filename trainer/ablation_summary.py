"""ablation.json's figures from the runs of trainer.ablate: per variant the mean and spread over seeds,
the table and the plot of validation loss against tokens."""

from __future__ import annotations

import statistics
from pathlib import Path

from trainer.metrics import read_csv


def stat(values: list[float]) -> dict:
    """Mean and spread (the sample standard deviation over seeds) of one figure."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "spread": None}
    return {"mean": statistics.fmean(values), "spread": statistics.stdev(values) if len(values) > 1 else 0.0}


def aggregate(runs: list[dict], tasks: list[str]) -> dict:
    """A variant's figures over its runs (one per seed)."""
    return {
        "valid_loss": stat([r["valid_loss"] for r in runs]),
        "heldout_loss": stat([r["heldout_loss"] for r in runs]),
        "downstream": {task: stat([r["downstream"].get(task) for r in runs]) for task in tasks},
    }


def _pm(entry: dict, digits: int = 4) -> str:
    if entry["mean"] is None:
        return "-"
    return f"{entry['mean']:.{digits}f} ± {entry['spread']:.{digits}f}"


def _pct(entry: dict) -> str:
    return "-" if entry["mean"] is None else f"{100 * entry['mean']:.1f} ± {100 * entry['spread']:.1f}"


def table(variants: list[dict], tasks: list[str]) -> dict:
    """{"header", "rows"}: one row per variant, losses in nats per token, accuracies in %."""
    header = ["variant", "documents", "train tokens", "epochs", "held-out loss", "own validation loss",
              *[f"{task} %" for task in tasks]]
    rows = [[v["name"], f"{v['documents']:,}", f"{v['tokens']:,}", f"{v['epochs']:.2f}", _pm(v["heldout_loss"]),
             _pm(v["valid_loss"]), *[_pct(v["downstream"][task]) for task in tasks]] for v in variants]
    return {"header": header, "rows": rows}


def format_table(content: dict) -> str:
    header, rows = content["header"], content["rows"]
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    line = lambda r: " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *map(line, rows)])


def validation_curve(run_folders: list[Path]) -> tuple[list[int], list[float]]:
    """(tokens, mean validation loss over the runs) at the validation passes every run made."""
    curves = [{int(r["tokens"]): float(r["val_loss"]) for r in read_csv(f / "valid.csv")} for f in run_folders]
    tokens = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return tokens, [statistics.fmean(c[t] for c in curves) for t in tokens]


def plot(variants: list[dict], out_png: Path) -> None:
    """Left: each variant's validation loss (on its own validation split) against tokens, mean over seeds;
    right: the held-out loss every model is scored on, each seed a dot, the mean a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, heldout) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for v in variants:
        tokens, losses = validation_curve([Path(r["run"]) for r in v["runs"]])
        curves.plot(tokens, losses, "o-", markersize=3, label=v["name"])
    curves.set_xlabel("tokens trained")
    curves.set_ylabel("validation loss (nats/token)")
    curves.set_title("own validation split of each variant, mean over seeds")
    curves.grid(alpha=0.3)
    curves.legend()
    for i, v in enumerate(variants):
        heldout.bar(i, v["heldout_loss"]["mean"], color=f"C{i}", alpha=0.5)
        heldout.plot([i] * len(v["runs"]), [r["heldout_loss"] for r in v["runs"]], "k.", markersize=8)
    heldout.set_xticks(range(len(variants)), [v["name"] for v in variants], rotation=20)
    low = min(r["heldout_loss"] for v in variants for r in v["runs"])
    high = max(r["heldout_loss"] for v in variants for r in v["runs"])
    heldout.set_ylim(low - 0.1 * (high - low + 0.01), high + 0.1 * (high - low + 0.01))
    heldout.set_ylabel("held-out loss (nats/token)")
    heldout.set_title("held-out text, the same for every model")
    heldout.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
