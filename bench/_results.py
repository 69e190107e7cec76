"""Run the benchmarks, keep their figures in bench/results.json and the README's table in step with it.

    python bench/_results.py run [bench/x.py ...]   # default: every bench/*.py and bench/*.sh
    python bench/_results.py readme                 # rewrite the README table from results.json
    python bench/_results.py check                  # exit 1 if the README table is not results.json's
    python bench/_results.py smoke [bench/x.py ...] # every bench on tiny inputs: that each still runs

A benchmark is any `bench/*.py` or `bench/*.sh` whose name does not start with `_` (those are helpers).
Each ends by printing one JSON object of its figures on its last line (GUIDE: `ratio`, `f1`, ...). `run`
streams each benchmark's output, takes that last JSON line and stores it in results.json under the
benchmark's path, with the date, the machine, the command and the wall time; benchmarks not run keep
their earlier entry. A benchmark that cannot run on this machine (no GPU, say) exits with status 77
and is reported as skipped; any other failure leaves its entry as it was and makes `run` fail at the
end, after the others have run.

Every benchmark takes `--smoke` (its only argument then; a shell script reads it as $1): it shrinks its
inputs and repeats to the least that still goes through every step (sizes only: no step is skipped),
and ends as a real run does, with its JSON line, or with 77 where it cannot run. tests/test_bench_smoke.py
starts each that way, so a change elsewhere that breaks a benchmark fails a test; a benchmark without
`--smoke` fails it too. Smoke figures are never recorded. A smoke run needs no shared data folder
(a fresh clone has none): bench/_shared.py then gives it the small copies in tests/fixtures.

The README table (between the two markers below) lists every benchmark: the first line of its
docstring (or of its header comment), its figures, and when and where they were measured, or "not
run". Figures shown: a module-level `README_FIGURES = ("key", ...)` in the benchmark names them; by
default the GUIDE's standard keys that it prints (`ratio`, `f1`, `precision`, `recall`,
`heldout_accuracy`). results.json holds every figure.
"""

from __future__ import annotations

import ast
import collections
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS = BENCH_DIR / "results.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench-table:begin (make bench writes it) -->", "<!-- bench-table:end -->"
STANDARD_FIGURES = ("ratio", "f1", "precision", "recall", "heldout_accuracy")
SKIPPED = 77  # exit status of a benchmark that cannot run here (automake's convention)


def benchmarks(bench_dir: Path = BENCH_DIR) -> list[Path]:
    return sorted(p for p in bench_dir.iterdir()
                  if p.suffix in (".py", ".sh") and p.is_file() and not p.name.startswith("_"))


def key_of(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def last_json_object(lines: list[str]) -> dict | None:
    """The benchmark's figures: its last output line, if that is a JSON object."""
    for line in reversed(lines):
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def machine() -> str:
    """What the figures were measured on: CPU model and count, memory, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        models = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = models[0].strip() if models else cpu
    except OSError:
        pass
    parts = [f"{os.cpu_count()} x {cpu}"]
    try:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
        parts.append(f"{kib / 2**20:.0f} GiB")
    except (OSError, AttributeError):
        pass
    if shutil.which("nvidia-smi"):
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True).stdout.split("\n")
        parts += [g.strip() for g in gpus if g.strip()]
    return ", ".join(parts)


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def write_results(results: dict, path: Path = RESULTS) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(results.items())), indent=1) + "\n")
    os.replace(tmp, path)


SMOKE = "--smoke"


def command_for(path: Path) -> list[str]:
    return ["bash", str(path)] if path.suffix == ".sh" else [sys.executable, str(path)]


def smoke(path: Path, timeout: float | None = None) -> tuple[int, dict | None, str]:
    """Run a benchmark with --smoke: (exit status, its last JSON line, its output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([*command_for(path), SMOKE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return done.returncode, last_json_object(done.stdout.splitlines()), done.stdout


def run_one(path: Path) -> tuple[int, dict | None, float]:
    """Run a benchmark with its output streamed; (exit status, figures, wall seconds)."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # progress shows as it happens, not when a buffer fills
    process = subprocess.Popen(command_for(path), cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
    lines = collections.deque(maxlen=50)  # the figures are the last line
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = process.wait()
    return status, last_json_object(list(lines)), time.perf_counter() - started


def run(paths: list[Path]) -> int:
    failed, skipped = [], []
    here = machine()
    for path in paths:
        print(f"== {key_of(path)}", flush=True)
        load = os.getloadavg()[0]
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        status, figures, wall = run_one(path)
        if status == SKIPPED:
            skipped.append(key_of(path))
            continue
        if status != 0 or figures is None:
            failed.append(f"{key_of(path)} (exit {status}{', no JSON last line' if figures is None else ''})")
            continue
        results = load_results()  # as it is now: another `run` may have recorded a benchmark meanwhile
        results[key_of(path)] = {"figures": figures, "date": date, "machine": here,
                                 "load_average_at_start": round(load, 1),
                                 "command": " ".join(["python" if c == sys.executable else c
                                                      for c in command_for(path.relative_to(ROOT))]),
                                 "wall_s": round(wall, 1)}
        write_results(results)  # after each benchmark: an interrupted `make bench` keeps what it measured
    update_readme()
    for name in skipped:
        print(f"skipped (cannot run on this machine): {name}")
    for name in failed:
        print(f"FAILED: {name}", file=sys.stderr)
    return 1 if failed else 0


def description(path: Path) -> str:
    """First line of the module docstring, or of the header comment of a shell script."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text)) or ""
        return doc.strip().split("\n")[0].rstrip(".")
    for line in text.split("\n")[1:]:
        if line.startswith("#"):
            return line.lstrip("# ").split(":")[0].strip().rstrip(".")
    return ""


def readme_figures(path: Path) -> tuple[str, ...] | None:
    """A benchmark's own `README_FIGURES = (...)`, read without running it."""
    if path.suffix != ".py":
        return None
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "README_FIGURES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return None


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_figures(figures: dict, keys: tuple[str, ...] | None) -> str:
    keys = keys or tuple(k for k in STANDARD_FIGURES if k in figures)
    shown = [f"{key} {format_value(figures[key])}" for key in keys if figures.get(key) is not None]
    return ", ".join(shown) or "see results.json"


def table(results: dict, paths: list[Path]) -> str:
    rows = ["| benchmark | what it measures | figures | measured |", "|---|---|---|---|"]
    for path in paths:
        key = key_of(path)
        entry = results.get(key)
        if entry is None:
            figures, when = "not run", ""
        else:
            figures = format_figures(entry["figures"], readme_figures(path))
            when = f"{entry['date'][:10]}, {entry['machine']}"
        rows.append(f"| `{key}` | {description(path)} | {figures} | {when} |")
    return "\n".join(rows)


def readme_with_table(readme: str, rendered: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README} has no benchmark table markers ({BEGIN} ... {END})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    new = readme_with_table(text, table(load_results(), benchmarks()))
    if new != text:
        README.write_text(new, encoding="utf-8")
        print(f"{README.relative_to(ROOT)}: benchmark table rewritten from {RESULTS.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    command, *names = argv or ["run"]
    if command == "run":
        return run([Path(n).resolve() for n in names] or benchmarks())
    if command == "readme":
        update_readme()
        return 0
    if command == "smoke":
        failed = []
        for path in [Path(n).resolve() for n in names] or benchmarks():
            started = time.perf_counter()
            status, figures, output = smoke(path)
            ok = status == SKIPPED or (status == 0 and figures is not None)
            print(f"{'ok' if ok else 'FAILED'}: {key_of(path)} (exit {status}, {time.perf_counter() - started:.0f} s)")
            if not ok:
                failed.append(key_of(path))
                print(output[-3000:], file=sys.stderr)
        return 1 if failed else 0
    if command == "check":
        text = README.read_text(encoding="utf-8")
        if readme_with_table(text, table(load_results(), benchmarks())) != text:
            print("README.md's benchmark table differs from bench/results.json: run "
                  "`python bench/_results.py readme`", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
