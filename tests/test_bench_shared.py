"""bench/_shared.py: where the benchmarks find the shared data, and the fixtures' stand-in a --smoke run
reads on a clone without it."""

import gzip
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_shared(monkeypatch, folder):
    monkeypatch.setenv("MTNLG_SHARED_DATA", str(folder))
    spec = importlib.util.spec_from_file_location("bench_shared", ROOT / "bench" / "_shared.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shared_folder_is_the_environment_s_and_a_real_run_never_reads_the_stand_in(monkeypatch, tmp_path):
    shared = load_shared(monkeypatch, tmp_path)
    assert shared.data_folder(smoke=False) == tmp_path
    assert shared.data_folder(smoke=True) == tmp_path  # present: smoke runs read it too
    missing = load_shared(monkeypatch, tmp_path / "missing")
    assert missing.data_folder(smoke=False) == tmp_path / "missing"  # a real run fails on it, as it should


def test_a_smoke_run_without_the_shared_folder_reads_the_fixtures_in_its_layout(monkeypatch, tmp_path):
    shared = load_shared(monkeypatch, tmp_path / "missing")
    folder = shared.data_folder(smoke=True)
    assert folder != tmp_path / "missing" and folder.is_dir()
    fixtures = ROOT / "tests" / "fixtures"
    for target, source in shared.STAND_IN_FILES.items():
        data = (fixtures / source).read_bytes()
        expected = gzip.decompress(data) if source.endswith(".gz") and not target.endswith(".gz") else data
        if target != "html/aeb_ground-truth.json":
            assert (folder / target).read_bytes() == expected, target
    pages = sorted(p.name.removesuffix(".html.gz") for p in (folder / "html" / "aeb_html").glob("*.html.gz"))
    truth = json.loads((folder / "html" / "aeb_ground-truth.json").read_text(encoding="utf-8"))
    assert sorted(truth) == pages and len(pages) == 21  # the truth cut to the pages there are
    evaluation = json.loads((folder / "html" / "trafilatura_evaldata_subset.json").read_text(encoding="utf-8"))
    assert all((folder / "html" / "trafilatura_eval" / item["file"]).read_bytes().lstrip().startswith(b"<")
               for item in evaluation.values()) and len(evaluation) == 11
