"""The projection's arithmetic: plain numbers in, plain numbers out (no Spark, no files).

Each stage's cost (CPU seconds, and wall seconds the same way) is modelled as

    one_time + per_run + per_byte * input_bytes

- one_time: what only a fresh process pays (Python workers importing their libraries, the JVM compiling
  hot code, a model loaded once per worker): the cold run's cost less the warm one's on the same files;
- per_run: what every run pays whatever its size (job scheduling, an index built on the driver, fixed
  partition counts): the warm cost less its bytes' share;
- per_byte: the slope between the warm runs on half the sampled files and on all of them.

Half the sample is run cold, then warm before and after the whole sample: the two warm runs' mean is
the warm cost, so a process that keeps warming up (or a machine that gets busier) does not bend the
slope. Both ends of the slope are sizeable runs: a tiny input (a few records) would leave most of a
stage's partitions empty and make the fixed cost look smaller than a real run's. Scaling the sample's
whole cost by bytes instead would multiply the fixed costs by the listing's size; they are counted once.
The JVM's start (the Spark session) is a fixed cost of its own, measured apart.

Output documents and bytes scale by input bytes (a ratio estimator over the sampled files); their
uncertainty is the spread between sampled files, as about two standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_BYTES_PER_TOKEN = 4.0  # GPT-2's BPE on English prose: about four characters per token


@dataclass(frozen=True)
class Cost:
    cpu_s: float
    wall_s: float


@dataclass(frozen=True)
class StageModel:
    """One stage's fitted cost (module docstring); CPU and wall seconds alike."""

    stage: str
    one_time: Cost
    per_run: Cost
    per_byte: Cost  # seconds per input byte

    def at(self, input_bytes: float) -> Cost:
        """What the stage costs in a fresh process on `input_bytes` of input."""
        return Cost(self.one_time.cpu_s + self.per_run.cpu_s + self.per_byte.cpu_s * input_bytes,
                    self.one_time.wall_s + self.per_run.wall_s + self.per_byte.wall_s * input_bytes)


def mean_cost(a: Cost, b: Cost) -> Cost:
    return Cost((a.cpu_s + b.cpu_s) / 2, (a.wall_s + b.wall_s) / 2)


def _fit(cold: float, warm: float, sample: float, half_bytes: float, sample_bytes: float) -> tuple[float, ...]:
    """(one_time, per_run, per_byte) of one quantity, none negative: noise never makes a cost below zero."""
    if sample_bytes > half_bytes:
        per_byte = max(0.0, (sample - warm) / (sample_bytes - half_bytes))
        per_run = max(0.0, warm - per_byte * half_bytes)
    else:  # no smaller run to draw a slope from: every warm second scales
        per_byte, per_run = max(0.0, sample) / sample_bytes, 0.0
    return max(0.0, cold - warm), per_run, per_byte


def fit_stage(stage: str, cold: Cost, warm: Cost, sample: Cost, half_bytes: int, sample_bytes: int) -> StageModel:
    """`cold` and `warm`: runs on `half_bytes` of the sample; `sample`: the warm run on all of it."""
    cpu = _fit(cold.cpu_s, warm.cpu_s, sample.cpu_s, half_bytes, sample_bytes)
    wall = _fit(cold.wall_s, warm.wall_s, sample.wall_s, half_bytes, sample_bytes)
    return StageModel(stage, *(Cost(c, w) for c, w in zip(cpu, wall, strict=True)))


def measurement_error(before: float, after: float, half_bytes: float, sample_bytes: float,
                      listing_bytes: float) -> float:
    """About two standard errors, in seconds, that measurement noise puts on a stage's projection: the two
    warm half runs measure the same thing, so their difference is the noise of one measurement (sd =
    |a - b| / sqrt 2); the slope's difference (one sample run less the mean of two) carries sqrt(1.5) of
    it, multiplied out to the listing's size. Zero when there is no slope."""
    if sample_bytes <= half_bytes:
        return 0.0
    sd = abs(before - after) / math.sqrt(2)
    return 2.0 * sd * math.sqrt(1.5) * (listing_bytes - half_bytes) / (sample_bytes - half_bytes)


def combined_error(relative: float | None, absolute_s: float, total_s: float) -> float | None:
    """A relative error and an error in seconds (independent, about two standard errors each) as one
    relative error of `total_s`."""
    parts = [relative or 0.0, absolute_s / total_s if total_s else 0.0]
    return math.hypot(*parts) if relative is not None or absolute_s else None


def relative_error(sizes: list[float], values: list[float], population: int, total_known: bool) -> float | None:
    """About two standard errors, relative, of a total projected from `values` of `n` sampled files out of
    `population`: the ratio estimator (values per byte) when the listing's bytes are known, the mean per file
    otherwise. None with fewer than two files or nothing to project."""
    n = len(values)
    if n < 2 or not sum(values):
        return None
    finite = max(0.0, 1.0 - n / population)
    if total_known:
        ratio = sum(values) / sum(sizes)
        residual = sum((v - ratio * s) ** 2 for s, v in zip(sizes, values, strict=True)) / (n - 1)
        mean = sum(values) / n
    else:
        mean = sum(values) / n
        residual = sum((v - mean) ** 2 for v in values) / (n - 1)
    return 2.0 * math.sqrt(finite * residual / n) / mean


def parallel_efficiency(models: list[StageModel], local_cores: int) -> float:
    """Share of the local cores the sample's size-dependent work kept busy (CPU / (wall x cores)),
    between 0.1 and 1: what the wall time at other core counts is projected with."""
    cpu = sum(m.per_byte.cpu_s for m in models)
    wall = sum(m.per_byte.wall_s for m in models)
    if cpu <= 0 or wall <= 0:
        return 1.0
    return min(1.0, max(0.1, cpu / (wall * local_cores)))


def wall_at_cores(model: StageModel, input_bytes: float, cores: int, tasks: int | None, efficiency: float) -> float:
    """A stage's wall seconds on `cores` executor cores: its fixed wall time, plus its size-dependent CPU
    spread over the cores it can use (a stage of one task per file uses at most `tasks` of them)."""
    usable = min(cores, tasks) if tasks else cores
    return model.one_time.wall_s + model.per_run.wall_s + model.per_byte.cpu_s * input_bytes / (usable * efficiency)


@dataclass(frozen=True)
class Scale:
    """How the sample relates to the listing."""

    sample_files: int
    listing_files: int
    sample_bytes: int
    listing_bytes: int
    listing_bytes_known: bool  # False: the listing's bytes are its file count x the sampled files' mean size

    @property
    def factor(self) -> float:
        return self.listing_bytes / self.sample_bytes if self.sample_bytes else 0.0


def listing_bytes(sample_sizes: list[int], all_sizes: list[int | None], listing_files: int) -> tuple[int, bool]:
    """The listing's input bytes, and whether they are known (every file's size) or estimated from the
    sampled files' mean size times the file count."""
    if len(all_sizes) == listing_files and all(s is not None for s in all_sizes):
        return sum(all_sizes), True  # type: ignore[arg-type]
    return round(sum(sample_sizes) / len(sample_sizes) * listing_files), False
