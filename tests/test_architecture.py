"""The shape of the code: imports run one way (dataprep -> blending <- trainer; the tools above them), the
formats the services exchange need neither Spark nor torch, the stage framework has no cycle and says in
its file names which files need Spark, and the pipeline's last stage is the one blending reads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# Which top-level package may import which: the two services meet only in blending's formats; the tools
# (test/demo data, reports) may use the services, never the other way round.
ALLOWED = {
    "dataprep": {"dataprep", "blending"},
    "blending": {"blending"},
    "trainer": {"trainer", "blending"},
    "samplecrawl": {"samplecrawl", "dataprep", "blending"},
    "reporting": {"reporting", "blending"},
}
# The formats the services exchange: stage folders, shards and manifest, evaluation tasks, hashing.
FORMAT_MODULES = ("blending.stage_folder", "blending.stage_stats", "blending.hashing", "blending.manifest",
                  "blending.indexed", "blending.docindex", "blending.evaltasks", "blending.stages",
                  "blending.documents", "blending.tokenizer")


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = set(map(id, tree.body))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level:
            package = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
            names = [f"{package}.{node.module}" if node.module else package]
        found += [(name, node.lineno, id(node) in top_level) for name in names]
    return found


def test_imports_run_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in _modules(package):
            for name, line, _ in _imports(path):
                top = name.split(".")[0]
                if top in ALLOWED and top not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "imports against dataprep -> blending <- trainer (tools above):\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("import os\nfrom dataprep.pipeline import last_stage\n\ndef f():\n    import trainer.train\n")
    assert [(n, line) for n, line, _ in _imports(bad)] == [("os", 1), ("dataprep.pipeline", 2), ("trainer.train", 5)]


@pytest.mark.parametrize("module", FORMAT_MODULES)
def test_format_modules_need_neither_spark_nor_torch(module):
    code = (f"import sys, {module}; print(sorted(m for m in ('pyspark', 'torch', 'dataprep', 'trainer') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", f"{module} pulls in {loaded.stdout.strip()}"


def test_framework_names_say_which_files_need_spark_and_it_has_no_cycle():
    framework = ROOT / "dataprep" / "framework"
    graph = {}
    for path in _modules("dataprep/framework"):
        imports = _imports(path)
        uses_spark = any(name.split(".")[0] == "pyspark" for name, _, top in imports if top)
        assert uses_spark == path.name.startswith("spark_"), f"{path.name}: imports pyspark: {uses_spark}"
        graph[path.stem] = {name.split(".")[2] for name, _, _ in imports
                            if name.startswith("dataprep.framework.") and name.count(".") >= 2}
        assert not any(name.startswith(("dataprep.pipeline", "dataprep.cli")) for name, _, _ in imports), path.name

    def reaches(start: str, target: str, seen: frozenset = frozenset()) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, f"import cycle through {cycles}"
    assert (framework / "__init__.py").is_file()


def test_the_pipelines_last_stage_is_the_one_blending_reads():
    from blending.stage_folder import FINAL_STAGE
    from dataprep.pipeline import last_stage

    assert last_stage() == FINAL_STAGE
