"""Build a sample crawl: plan it, write its WARC files (in parallel when asked), write truth.json."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .config import SampleCrawlConfig
from .crawl_file import write_crawl_file
from .material import Material, load_material
from .plan import build_plan
from .truth import make_truth, write_truth


def file_name(config: SampleCrawlConfig, seed: int, index: int) -> str:
    return f"{config.crawl_name}-{seed}-{index:05d}.warc.gz"


# Worker state: set before the pool forks, read by write_file in the children.
_JOB: dict = {}


def write_file(index: int) -> dict:
    job = _JOB
    path = Path(job["dir"]) / file_name(job["config"], job["seed"], index)
    return write_crawl_file(path, index, job["pages"], job["material"], job["config"], job["seed"])


def _run_files(count: int, workers: int, progress: bool):
    bar = tqdm(total=count, unit="file", desc="sample crawl", disable=not progress)
    if workers > 1 and count > 1 and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, count), mp_context=context) as pool:
            for result in pool.map(write_file, range(count)):
                bar.update()
                yield result
    else:
        for index in range(count):
            yield write_file(index)
            bar.update()
    bar.close()


def build_sample_crawl(
    out_dir: str | Path,
    records: int,
    files: int,
    seed: int,
    material: str | Path | Material | None = None,
    config: SampleCrawlConfig | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write `files` WARC files holding exactly `records` records and `truth.json` into `out_dir`;
    return the truth. The same seed, material and config give byte-identical files for any `workers`."""
    config = config or SampleCrawlConfig()
    if not isinstance(material, Material):
        material = load_material(material)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not overwrite and any(out_dir.iterdir()):
            raise FileExistsError(f"{out_dir} exists and is not empty (use overwrite=True / --overwrite)")
        shutil.rmtree(out_dir)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    pages = build_plan(material, config, records, files, seed)
    _JOB.update(material=material, config=config, seed=seed, pages=pages, dir=str(tmp))
    try:
        results = list(_run_files(files, workers, progress))
    finally:
        _JOB.clear()

    truth = make_truth(results, pages, material, config, records, files, seed)
    with open(tmp / "truth.json", "w") as handle:
        write_truth(truth, handle)
    tmp.rename(out_dir)
    return truth
