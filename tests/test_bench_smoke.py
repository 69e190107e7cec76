"""Every benchmark still starts and finishes: each bench/*.py and *.sh run with --smoke (tiny inputs, one
repeat; bench/_results.py) exits 0 with a JSON line last, or 77 where it cannot run (no GPU)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "_results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


@pytest.mark.slow
@pytest.mark.parametrize("bench", results.benchmarks(), ids=lambda p: p.name)
def test_the_benchmark_runs_on_tiny_inputs(bench):
    status, figures, output = results.smoke(bench, timeout=600)
    assert status in (0, results.SKIPPED), f"{bench.name} --smoke exited {status}:\n{output[-4000:]}"
    if status == 0:
        assert figures is not None, f"{bench.name} --smoke printed no JSON line last:\n{output[-2000:]}"
