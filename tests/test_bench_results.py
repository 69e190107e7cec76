"""bench/_results.py: every benchmark is found, its last JSON line kept, and the README table is the one
results.json gives (so no figure in it is typed by hand)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_results", ROOT / "bench" / "_results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def test_every_python_and_shell_benchmark_is_found_and_helpers_are_not(tmp_path):
    for name in ("b_throughput.py", "a_quality.py", "gpu.sh", "_helper.py", "notes.md"):
        (tmp_path / name).write_text('"""Doc."""\n')
    assert [p.name for p in results.benchmarks(tmp_path)] == ["a_quality.py", "b_throughput.py", "gpu.sh"]


def test_the_figures_are_the_last_output_line_when_it_is_a_json_object():
    assert results.last_json_object(["progress 1/2\n", '{"ratio": 0.5}\n', "{\"ratio\": 1.2, \"f1\": 0.9}\n", "\n"]) == {
        "ratio": 1.2, "f1": 0.9}
    assert results.last_json_object(['{"ratio": 1.2}\n', "done\n"]) is None
    assert results.last_json_object(["[1, 2]\n"]) is None


def test_table_rows_name_figures_or_not_run(tmp_path, monkeypatch):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "fast.py").write_text('"""Fast thing: ours against theirs.\n\nMore."""\nREADME_FIGURES = ("ratio", "f1")\n')
    (bench / "slow.py").write_text('"""Slow thing."""\n')
    (bench / "gpu.sh").write_text("#!/usr/bin/env bash\n# GPU thing: details\n")
    monkeypatch.setattr(results, "ROOT", tmp_path)
    entry = {"figures": {"ratio": 1.234, "f1": 0.9, "tokens_per_s": 5}, "date": "2026-01-02 03:04 UTC",
             "machine": "2 x CPU"}
    table = results.table({"bench/fast.py": entry}, results.benchmarks(bench)).split("\n")
    assert table[2] == "| `bench/fast.py` | Fast thing: ours against theirs | ratio 1.23, f1 0.9 | 2026-01-02, 2 x CPU |"
    assert table[3] == "| `bench/gpu.sh` | GPU thing | not run |  |"
    assert table[4] == "| `bench/slow.py` | Slow thing | not run |  |"
    with pytest.raises(SystemExit, match="markers"):
        results.readme_with_table("# no table here\n", "x")


def test_readme_table_is_generated_from_results_json():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    recorded = json.loads((ROOT / "bench" / "results.json").read_text())
    assert set(recorded) <= {results.key_of(p) for p in results.benchmarks()}
    assert results.readme_with_table(readme, results.table(recorded, results.benchmarks())) == readme, (
        "README.md's benchmark table is not bench/results.json's: run `python bench/_results.py readme`")
