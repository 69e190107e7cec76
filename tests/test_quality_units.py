"""The quality classifier without Spark: normalisation, windows, the shipped training texts, grouped
cross-validation, training (accuracy, determinism), model checks, scoring, the Pareto draw."""

import gzip
import json
import math
import random
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from blending.hashing import sha256_file
from dataprep.config import ClassifierConfig
from dataprep.extract.html_text import boilerplate_paragraphs, html_to_text
from dataprep.quality.build_corpus import page_texts, without_article
from dataprep.quality.corpus import HIGH, LOW, default_paths, load_examples, make_examples, read_documents
from dataprep.quality.evaluation import group_folds, heldout_groups, length_rule, pareto_keep_threshold, roc_auc, scores
from dataprep.quality.heldout import HELDOUT_FILE, HELDOUT_SPEECHES_FROM
from dataprep.quality.model import ModelError, check_model, score_texts
from dataprep.quality.pareto import keeps, lomax, pareto_cdf, pareto_draw, uniform
from dataprep.quality.text import normalize, windows
from dataprep.quality.train import MODEL_FILE, fit

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped_examples():
    return load_examples(*default_paths(), 512, 50, seed=0)


@pytest.fixture(scope="module")
def metrics(default_classifier) -> dict:
    return json.loads((default_classifier.parent / "metrics.json").read_text())


# -- text ---------------------------------------------------------------------------------------------------


def test_normalize_folds_what_says_nothing_about_quality():
    book = "\u201cIt is a truth,\u201d said _Mr._ Bennet\u2014\nuniversally acknowledged."
    web = '"It is a truth," said Mr. Bennet - universally acknowledged.'
    assert normalize(book) == normalize(web) == '" it is a truth , " said mr . bennet - universally acknowledged .'
    assert "\n" not in normalize("one\n\ntwo\r\nthree")


def test_windows_are_equal_in_length_and_the_remainder_is_left_out():
    text = (FIXTURES / "prose" / "frankenstein_head.txt").read_text(encoding="utf-8")
    cut = windows(text, 512)
    assert len(cut) > 100
    assert all(460 <= len(w) <= 512 for w in cut)
    assert " ".join(cut) in " ".join(text.split())  # consecutive, nothing rearranged
    assert windows("far too short", 512) == []


# -- training texts -----------------------------------------------------------------------------------------


def test_extracted_and_whole_page_text_of_a_real_page_without_its_article():
    truth = json.loads((FIXTURES / "html/aeb/ground-truth.json").read_text())
    page_id = "8e3efab59f48fd29a1e1e7aa135880c4251a9f090f94999668cdbaec59d30b5a"
    payload = gzip.decompress((FIXTURES / f"html/aeb/{page_id}.html.gz").read_bytes())
    texts = page_texts(payload, truth[page_id]["url"])
    extracted, whole = texts["extracted"], texts["whole-page"]
    article = truth[page_id]["articleBody"]
    assert len(whole) > len(extracted) > 0.5 * len(article)
    boilerplate = without_article(whole, article)
    first_sentence = normalize(article.split("\n")[0][:60])
    assert first_sentence in normalize(whole) and first_sentence not in normalize(boilerplate)
    assert 0 < len(boilerplate) < len(whole) - 0.8 * len(article)


def test_rejected_paragraphs_of_a_real_page_are_its_boilerplate_not_its_article():
    truth = json.loads((FIXTURES / "html/aeb/ground-truth.json").read_text())
    page_id = "8e3efab59f48fd29a1e1e7aa135880c4251a9f090f94999668cdbaec59d30b5a"
    page = gzip.decompress((FIXTURES / f"html/aeb/{page_id}.html.gz").read_bytes()).decode("utf-8")
    rejected = boilerplate_paragraphs(page, "en")
    kept = html_to_text(page, "en").split("\n\n")
    assert len(rejected) > 10 and not set(rejected) & set(kept)
    first_sentence = normalize(truth[page_id]["articleBody"].split("\n")[0][:60])
    assert first_sentence not in normalize(" ".join(rejected))


def test_shipped_texts_are_small_labelled_and_grouped():
    positives, negatives = default_paths()
    assert sum(p.stat().st_size for p in [*positives, *negatives]) < 4_000_000
    sources = {name: Counter(d["source"] for p in paths for d in read_documents(p))
               for name, paths in (("positives", positives), ("negatives", negatives))}
    assert set(sources["positives"]) == {"wikipedia", "books", "speeches", "articles"}
    assert {s.split("/")[0] for s in sources["negatives"]} == {"common-crawl", "wget-crawl", "clueweb",
                                                                "benchmark-pages"}
    wiki = [d["text"] for d in read_documents(positives[0]) if d["source"] == "wikipedia"]
    assert len(wiki) > 200
    assert not any(" @-@ " in t or "<unk>" in t for t in wiki)
    books = " ".join(d["text"] for d in read_documents(positives[0]) if d["source"] == "books")
    assert "Project Gutenberg" not in books and "Elizabeth" in books
    assert (ROOT / "dataprep/quality/data/SOURCES.md").is_file()


def test_the_held_out_set_shares_no_group_with_training():
    positives, negatives = default_paths()
    training = [d for p in [*positives, *negatives] for d in read_documents(p)]
    heldout = list(read_documents(HELDOUT_FILE))
    assert HELDOUT_FILE.stat().st_size < 1_000_000
    assert not {d["group"] for d in heldout} & {d["group"] for d in training}
    assert Counter(d["label"] for d in heldout).keys() == {HIGH, LOW}
    assert {(d["label"], d["source"]) for d in heldout} == {
        (HIGH, "wikipedia"), (HIGH, "speeches"), (HIGH, "articles"),
        (LOW, "benchmark-pages/boilerplate"), (LOW, "trafilatura-pages/boilerplate")}
    def state_union_years(documents):
        return {int(d["group"].split(": ")[-1][:4]) for d in documents if d["group"].startswith("speech:State Union")}

    assert min(state_union_years(heldout)) == HELDOUT_SPEECHES_FROM > max(state_union_years(training))
    # no sentence of the held-out prose is a training text's
    training_text = " ".join(normalize(d["text"]) for d in training if d["source"] in ("wikipedia", "articles"))
    held_prose = [d["text"] for d in heldout if d["source"] in ("wikipedia", "articles")]
    assert not any(normalize(text[:200]) in training_text for text in held_prose)


def test_examples_are_balanced_capped_per_group_and_in_a_fixed_order(shipped_examples):
    labels = Counter(e.label for e in shipped_examples)
    assert labels[HIGH] == labels[LOW] > 1500
    assert max(Counter((e.label, e.group) for e in shipped_examples).values()) <= 50
    positives, negatives = default_paths()
    documents = [(HIGH, d) for d in read_documents(positives[0])][:200]
    documents += [(LOW, d) for d in read_documents(negatives[0])][:200]
    assert make_examples(documents, 512, 50, 0) == make_examples(list(reversed(documents)), 512, 50, 0)


# -- evaluation ---------------------------------------------------------------------------------------------


def test_folds_and_held_out_split_never_cut_a_group(shipped_examples):
    folds = group_folds(shipped_examples, 5)
    sizes = Counter(folds[e.group] for e in shipped_examples)
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) < 1.3 * min(sizes.values())
    held = heldout_groups(shipped_examples, 0.1)
    share = sum(e.group in held for e in shipped_examples) / len(shipped_examples)
    assert 0.1 <= share < 0.15
    # a page's article and its boilerplate share their host's group, so they land on the same side
    host_labels = Counter(e.label for e in shipped_examples if e.group == "web:latimes.com")
    assert set(host_labels) == {HIGH, LOW}


def test_roc_auc_counts_pairs_ranked_right_and_ties_as_half():
    # pairs (high, low): (.9, .1) (.9, .6) (.4, .1) right, (.4, .6) wrong
    assert roc_auc([HIGH, LOW, HIGH, LOW], [0.9, 0.1, 0.4, 0.6]) == 0.75
    assert roc_auc([HIGH, LOW], [0.5, 0.5]) == 0.5
    assert roc_auc([HIGH, HIGH, LOW], [0.5, 0.7, 0.5]) == 0.75  # one tie (1/2) and one right pair
    assert roc_auc([LOW, HIGH, LOW, HIGH], [0.2, 0.2, 0.2, 0.3]) == 0.75
    assert roc_auc([HIGH, LOW], [0.1, 0.9]) == 0.0
    with pytest.raises(ValueError):
        roc_auc([HIGH, HIGH], [0.1, 0.9])


def test_pareto_keep_threshold_is_where_the_filter_keeps_half():
    threshold = pareto_keep_threshold(3.0)
    assert threshold == pytest.approx(2 - 2 ** (1 / 3))  # 0.740
    assert pareto_cdf(1 - threshold, 3.0) == pytest.approx(0.5)
    draws = np.random.default_rng(0).pareto(3.0, 200_000)
    assert np.mean(draws > 1 - threshold) == pytest.approx(0.5, abs=0.005)


def test_length_rule_learns_what_word_counts_tell(shipped_examples):
    rule = length_rule(shipped_examples)
    accuracy = scores([e.label for e in shipped_examples], [rule(e) for e in shipped_examples])["accuracy"]
    assert 0.55 < accuracy < 0.8  # word length tells something, not enough


# -- the default classifier ---------------------------------------------------------------------------------


def test_default_classifier_is_accurate_beyond_length_and_small(metrics, default_classifier):
    cv = metrics["cv"]
    assert cv["folds"] == 5 and len(cv["accuracy_per_fold"]) == 5
    assert cv["accuracy_mean"] >= 0.90
    assert cv["accuracy_mean"] >= cv["length_baseline"]["accuracy_mean"] + 0.15
    assert 0 < cv["accuracy_std"] < 0.1
    assert metrics["heldout"]["accuracy"] >= 0.88
    held_set = metrics["heldout_set"]
    assert held_set["roc_auc"] >= 0.99 and held_set["accuracy"] >= 0.95
    assert held_set["accuracy_at_pareto_threshold"] >= 0.95 and held_set["pareto_threshold"] == pareto_keep_threshold(3.0)
    assert held_set["windows"] > 500 and min(held_set["roc_auc_per_source"].values()) >= 0.98
    confusion = cv["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == metrics["examples"]["windows"]
    assert metrics["model"]["bytes"] == default_classifier.stat().st_size < 10_000_000
    assert metrics["model"]["sha256"] == sha256_file(default_classifier)
    assert set(metrics["examples"]["per_source"]) >= {"high/books", "low/common-crawl/extracted"}


def test_training_is_deterministic_in_one_process(tmp_path, shipped_examples):
    config = ClassifierConfig()
    subset = shipped_examples[:800]
    first, second = fit(subset, config, str(tmp_path)), fit(subset, config, str(tmp_path))
    first.save_model(str(tmp_path / "a.bin"))
    second.save_model(str(tmp_path / "b.bin"))
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_train_classifier_command_on_given_files(tmp_path):
    positives, negatives = tmp_path / "pos.jsonl", tmp_path / "neg.jsonl"
    with open(positives, "w") as pos, open(negatives, "w") as neg:
        for document in read_documents(default_paths()[0][0]):
            if document["source"] == "speeches":
                pos.write(json.dumps(document) + "\n")
        for document in read_documents(default_paths()[1][0]):
            if document["source"].startswith("benchmark-pages"):
                neg.write(json.dumps(document) + "\n")
    (tmp_path / "quick.yaml").write_text("classifier:\n  epoch: 2\n  max_windows_per_group: 5\n")
    out = tmp_path / "clf"
    done = subprocess.run([sys.executable, "-m", "dataprep", "train-classifier", "--out", str(out),
                           "--positives", str(positives), "--negatives", str(negatives),
                           "--config", str(tmp_path / "quick.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "cv accuracy (5 folds by group)" in done.stdout and "length-only baseline" in done.stdout
    written = json.loads((out / "metrics.json").read_text())
    assert written["data"]["positives"][0]["path"] == str(positives)
    assert set(written["examples"]["per_source"]) == {"high/speeches", "low/benchmark-pages/whole-page-boilerplate",
                                                      "low/benchmark-pages/extracted-boilerplate",
                                                      "low/benchmark-pages/boilerplate"}
    assert "held-out set (sources never trained on): ROC AUC" in done.stdout
    assert 0.5 < written["heldout_set"]["roc_auc"] <= 1
    assert written["config"]["epoch"] == 2
    check_model(out / MODEL_FILE)


# -- model files --------------------------------------------------------------------------------------------


def test_missing_corrupt_and_foreign_models_are_refused(tmp_path, default_classifier):
    with pytest.raises(ModelError, match="no model file"):
        check_model(tmp_path / "none.bin")
    (tmp_path / "text.bin").write_text("not a model")
    with pytest.raises(ModelError, match="not a fastText model"):
        check_model(tmp_path / "text.bin")
    data = default_classifier.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="corrupt"):
        check_model(tmp_path / "cut.bin")
    # A model of other labels, trained in a fresh process: fastText's training in this long test process,
    # after the torch and Spark tests, now and then reports "Encountered NaN".
    script = (
        "import sys; from tests.helpers import foreign_model; foreign_model(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, check=True)
    with pytest.raises(ModelError, match="__label__news, __label__sports"):
        check_model(tmp_path / "other.bin")


def test_scores_are_probabilities_of_high_quality_in_batch_order(default_classifier):
    model = check_model(default_classifier)
    article = (FIXTURES / "prose" / "frankenstein_head.txt").read_text(encoding="utf-8")[20000:24000]
    menu = "Home | News | Sport | Weather | Contact us | Privacy policy | Cookie settings | Log in | " * 20
    got = score_texts(model, [article, menu, "", None])
    assert got[0] > 0.9 and got[1] < 0.1 and got[2:] == [0.0, 0.0]
    assert score_texts(model, [menu, article]) == [got[1], got[0]]
    assert all(0.0 <= s <= 1.0 for s in got)


# -- the Pareto draw ----------------------------------------------------------------------------------------


def test_draw_is_the_documented_hash_and_formula():
    import hashlib

    k = int.from_bytes(hashlib.sha256(b"0123456789abcdef\x000").digest()[:8], "big") >> 11
    u = (k + 0.5) / 2**53
    assert uniform("0123456789abcdef", 0) == u
    assert pareto_draw("0123456789abcdef", 0, 3.0) == pytest.approx((1 - u) ** (-1 / 3) - 1, rel=1e-12)
    assert pareto_draw("0123456789abcdef", 1, 3.0) != pareto_draw("0123456789abcdef", 0, 3.0)


def test_a_document_scored_one_is_always_kept():
    smallest = 0.5 / 2**53  # k = 0
    assert (1 - smallest) ** (-1 / 3) - 1 == 0.0  # the formula as written rounds to 0 here ...
    assert lomax(smallest, 3.0) > 0 and keeps(1.0, lomax(smallest, 3.0))  # ... ours does not
    ids = [f"{i:016x}" for i in range(20000)]
    assert all(keeps(1.0, pareto_draw(i, 0, 3.0)) for i in ids)
    assert not any(keeps(0.0, pareto_draw(i, 0, 3.0)) for i in ids[:100] if pareto_draw(i, 0, 3.0) <= 1.0)


def _ks_statistic(draws: list[float], cdf) -> float:
    draws = sorted(draws)
    n = len(draws)
    return max(max((i + 1) / n - cdf(x), cdf(x) - i / n) for i, x in enumerate(draws))


def test_draws_follow_pareto_3_kolmogorov_smirnov():
    rng = random.Random(5)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(20000)]
    draws = [pareto_draw(i, 0, 3.0) for i in ids]
    critical = 1.628 / math.sqrt(len(draws))  # p = 0.01
    assert _ks_statistic(draws, lambda x: pareto_cdf(x, 3.0)) < critical
    assert _ks_statistic(draws, lambda x: pareto_cdf(x, 2.5)) > critical  # the test can tell alpha apart
    assert statistics.mean(draws) == pytest.approx(0.5, abs=0.03)  # Lomax(3) mean: 1 / (alpha - 1)


def test_a_bad_model_is_refused_before_spark_starts(tmp_path, default_classifier):
    (tmp_path / "cut.bin").write_bytes(default_classifier.read_bytes()[:-100])
    runs = [(["quality", "--input", str(tmp_path / "cleanup"), "--output", str(tmp_path / "quality")],
             "none.bin", "no model file"),
            (["run", "--input", str(FIXTURES / "warc" / "whirlwind.warc.gz"), "--out", str(tmp_path / "run")],
             "cut.bin", "corrupt fastText model")]
    for command, model, message in runs:
        done = subprocess.run([sys.executable, "-m", "dataprep", *command, "--model", str(tmp_path / model)],
                              capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 2
        assert message in done.stderr and "Traceback" not in done.stderr
        assert "log4j" not in done.stderr  # no Spark session was started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.bin"]  # no stage folder was begun
