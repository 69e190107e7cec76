"""Throughput arithmetic and the run's records: CSV, TensorBoard and `loss.png`.

Files under RUN/:
  metrics.csv   one row per step (train loss, lr, batch, tokens/s, TFLOP/s, MFU)
  valid.csv     one row per validation pass
  tensorboard/  the same scalars as TensorBoard events
  loss.png      train and validation loss against tokens, redrawn at every validation pass
After a resume, rows and events past the checkpoint's step (written by the run that was stopped) are
dropped first, so the records always describe the one stream of steps that the model went through.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

TRAIN_COLUMNS = (
    "step", "tokens", "samples", "loss", "lr", "global_batch", "step_s", "tokens_per_s", "tflops_per_gpu", "mfu",
)
VALID_COLUMNS = ("step", "tokens", "val_loss")


def narayanan_flops_per_iteration(
    batch: int, seq: int, layers: int, hidden: int, vocab: int, recompute: bool = True
) -> float:
    """FLOPs of one iteration (forward + backward) of a GPT, Narayanan et al. 2021, eq. 3:
    96 B s l h^2 (1 + s/(6h) + V/(16 l h)) with full activation recomputation, 72 without."""
    factor = 96 if recompute else 72
    return factor * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))


# Dense bf16 peak (TFLOP/s) of common accelerators, from the vendors' data sheets.
_PEAK_BF16_TFLOPS = (
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM; checked after PCIe and NVL
    ("H800", 989.4),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
)


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Peak dense TFLOP/s of a GPU for the run's precision, or None when unknown (CPU included)."""
    if precision != "bf16":
        return None  # fp32 peaks depend on TF32 settings; MFU is quoted for bf16 runs only
    for key, value in _PEAK_BF16_TFLOPS:
        if key in device_name:
            return value
    return None


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    return f"{hours:d}:{minutes:02d}:{secs:02d}"


def _truncate_csv(path: Path, columns: tuple[str, ...], last_step: int) -> None:
    """Keep the header and the rows up to `last_step`; create the file with its header if absent."""
    rows = []
    if path.exists():
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= last_step]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_csv(path: str | Path) -> list[dict]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


class RunRecords:
    """Writes the run's metrics; used on one rank only (global rank 0)."""

    def __init__(self, run_dir: str | Path, last_step: int, reference_loss: float | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = self.run_dir / "metrics.csv"
        self.valid_csv = self.run_dir / "valid.csv"
        self.reference_loss = reference_loss  # drawn as a line on loss.png (the unigram baseline)
        _truncate_csv(self.train_csv, TRAIN_COLUMNS, last_step)
        _truncate_csv(self.valid_csv, VALID_COLUMNS, last_step)
        self._tensorboard = _open_tensorboard(self.run_dir / "tensorboard", purge_step=last_step + 1)

    def log_train(self, row: dict) -> None:
        self._append(self.train_csv, TRAIN_COLUMNS, row)
        if self._tensorboard is not None:
            for key in ("loss", "lr", "global_batch", "tokens_per_s", "tflops_per_gpu", "mfu"):
                if row.get(key) is not None:
                    self._tensorboard.add_scalar(f"train/{key}", row[key], row["step"])
            self._tensorboard.add_scalar("train/loss_vs_tokens", row["loss"], row["tokens"])

    def log_valid(self, row: dict) -> None:
        self._append(self.valid_csv, VALID_COLUMNS, row)
        if self._tensorboard is not None:
            self._tensorboard.add_scalar("valid/loss", row["val_loss"], row["step"])
            self._tensorboard.flush()
        self.plot()

    def plot(self) -> None:
        plot_losses(self.train_csv, self.valid_csv, self.run_dir / "loss.png", self.reference_loss)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()

    @staticmethod
    def _append(path: Path, columns: tuple[str, ...], row: dict) -> None:
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=columns).writerow(
                {key: ("" if row.get(key) is None else row[key]) for key in columns}
            )


def _open_tensorboard(folder: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: CSV and loss.png carry the same numbers
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def plot_losses(train_csv: Path, valid_csv: Path, out_png: Path, reference_loss: float | None = None) -> None:
    """Draw train loss (raw and smoothed) and validation loss against tokens, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = read_csv(train_csv) if train_csv.exists() else []
    valid = read_csv(valid_csv) if valid_csv.exists() else []
    fig, ax = plt.subplots(figsize=(8, 5))
    if train:
        tokens = [int(r["tokens"]) for r in train]
        loss = [float(r["loss"]) for r in train]
        ax.plot(tokens, loss, color="tab:blue", alpha=0.3, linewidth=0.8)
        # About 20 points of memory however long the run: smooth, yet not lagging on short runs.
        decay = min(0.98, max(0.0, 1.0 - 20.0 / len(loss)))
        ax.plot(tokens, _ema(loss, decay), color="tab:blue", label="train (smoothed)")
    if valid:
        ax.plot([int(r["tokens"]) for r in valid], [float(r["val_loss"]) for r in valid],
                "o-", color="tab:orange", label="validation")
    if reference_loss is not None:
        ax.axhline(reference_loss, color="gray", linestyle="--", label=f"unigram model ({reference_loss:.3f})")
    ax.set_xlabel("tokens")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)


def _ema(values: list[float], decay: float) -> list[float]:
    """Exponential moving average, debiased as TensorBoard's smoothing is (no pull towards the start)."""
    out, current = [], 0.0
    for count, value in enumerate(values, start=1):
        current = decay * current + (1 - decay) * value
        out.append(current / (1 - decay**count))
    return out
