"""Main-text extraction quality: our html_to_text against plain jusText, trafilatura and resiliparse.

1. The article-extraction benchmark (scrapinghub/article-extraction-benchmark, 181 news and blog pages
   with the gold article body of each), scored with its own metric (bench/_aeb_metric.py: 4-gram
   shingle precision / recall per page, means over pages, F1 of the means). Pages are sorted by id;
   html_to_text's parameters were tuned on the even-numbered half (`f1_tune_half`) and the odd-numbered
   half was held out (`f1_holdout_half`).
2. trafilatura's evaluation pages (100 of its 990, mostly German), each with snippets the main text must
   contain and snippets it must not: `snippets_right` is the share of snippets an extractor gets right.

Pages go through the pipeline's own steps: bytes decoded by dataprep.text.charset, language from CLD2
on the HTML (dataprep.text.language, with the page URL as hint where the benchmark gives it), then
html_to_text. Baselines, on the same decoded pages:
  - jusText as shipped: `justext.justext(page, English stoplist)` with its default parameters (the
    benchmark's published jusText row uses these);
  - ours with jusText's default parameters and no boilerplate removal (the language stoplist only);
  - trafilatura.extract(page) and resiliparse extract_plain_text(main_content=True), for reference,
    when installed (requirements-bench.txt); "not installed" otherwise.
Speed: every extractor is timed per page; medians are quoted. `ratio` = plain jusText's median time per
page over ours (higher is faster). Worst case: a page whose text is a long run of short paragraphs (the
benchmark's gold texts cut into table cells of three words): jusText's context revision walks the run
for every paragraph (quadratic), ours (dataprep.extract.justext_revise) sweeps it twice.

    python bench/extraction_quality.py [--data ../shared/data/html] [--pages N] [--smoke]

The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import justext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _aeb_metric import page_counts, scores  # noqa: E402
from _shared import data_folder  # noqa: E402

from dataprep.extract.html_clean import remove_boilerplate  # noqa: E402
from dataprep.extract.html_text import (  # noqa: E402
    DEFAULT_PARAMS,
    JUSTEXT_DEFAULTS,
    _ParagraphMaker,
    _parse,
    _stoplist,
    html_to_text,
)
from dataprep.extract.justext_revise import revise_paragraph_classification  # noqa: E402
from dataprep.text.charset import decode_html  # noqa: E402
from dataprep.text.language import identify_language  # noqa: E402

Extractor = Callable[[str, str | None], str]

README_FIGURES = ("f1", "f1_holdout_half", "justext_default_f1", "trafilatura_f1", "ratio")  # the figures bench/_results.py puts in the README table


def load_aeb(data: Path) -> list[dict]:
    truth = json.loads((data / "aeb_ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        payload = gzip.decompress((data / "aeb_html" / f"{page_id}.html.gz").read_bytes())
        html = decode_html(payload, None).text
        url = truth[page_id].get("url")
        language, _ = identify_language(html, is_html=True, url=url)
        pages.append({"id": page_id, "html": html, "language": language, "truth": truth[page_id]["articleBody"]})
    return pages


def load_trafilatura_eval(data: Path) -> list[dict]:
    items = json.loads((data / "trafilatura_evaldata_subset.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(items):
        item = items[key]
        html = decode_html((data / "trafilatura_eval" / item["file"]).read_bytes(), None).text
        language, _ = identify_language(html, is_html=True)
        pages.append({"id": item["file"], "html": html, "language": language,
                      "with": item["with"], "without": item["without"]})
    return pages


def plain_justext(html: str, language: str | None) -> str:
    paragraphs = justext.justext(html, justext.get_stoplist("English"))
    return "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def optional_extractors() -> dict[str, Extractor | str]:
    found: dict[str, Extractor | str] = {}
    try:
        import trafilatura

        found["trafilatura"] = lambda html, language: trafilatura.extract(html) or ""
    except ImportError:
        found["trafilatura"] = "not installed"
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        found["resiliparse"] = lambda html, language: extract_plain_text(HTMLTree.parse(html), main_content=True)
    except ImportError:
        found["resiliparse"] = "not installed"
    return found


def run(extractor: Extractor, pages: list[dict]) -> tuple[list[str], list[float]]:
    outputs, seconds = [], []
    for page in pages:
        start = time.perf_counter()
        outputs.append(extractor(page["html"], page["language"]))
        seconds.append(time.perf_counter() - start)
    return outputs, seconds


def aeb_scores(pages: list[dict], outputs: list[str]) -> dict[str, float]:
    counts = [page_counts(page["truth"], output) for page, output in zip(pages, outputs, strict=True)]
    result = scores(counts)
    result["f1_tune_half"] = scores(counts[0::2])["f1"]
    result["f1_holdout_half"] = scores(counts[1::2])["f1"]
    result["empty"] = sum(1 for output in outputs if not output.strip())
    return result


def snippets_right(pages: list[dict], outputs: list[str]) -> dict[str, float]:
    found = sum(snippet in output for page, output in zip(pages, outputs, strict=True) for snippet in page["with"])
    avoided = sum(snippet not in output for page, output in zip(pages, outputs, strict=True)
                  for snippet in page["without"])
    wanted = sum(len(page["with"]) for page in pages)
    unwanted = sum(len(page["without"]) for page in pages)
    return {"snippets_right": (found + avoided) / (wanted + unwanted), "must_contain_found": found / wanted,
            "must_not_contain_avoided": avoided / unwanted}


def short_run_revision_ms(pages: list[dict], cells: int = 4000) -> tuple[float, float]:
    """Median ms of (ours, jusText's) context revision on a page of `cells` three-word table cells."""
    words = " ".join(page["truth"] for page in pages).split()
    rows = "".join(f"<tr><td>{' '.join(words[i:i + 3])}</td></tr>" for i in range(0, 3 * cells, 3))
    paragraphs = _ParagraphMaker.make_paragraphs(remove_boilerplate(_parse(f"<html><body><table>{rows}</table>")))
    params = DEFAULT_PARAMS
    justext.core.classify_paragraphs(paragraphs, _stoplist("English"), params.length_low, params.length_high,
                                     params.stopwords_low, params.stopwords_high, params.max_link_density)
    timings: dict[str, list[float]] = {"ours": [], "justext": []}
    for _ in range(3):
        for name, revise in (("ours", revise_paragraph_classification),
                             ("justext", justext.core.revise_paragraph_classification)):
            start = time.perf_counter()
            revise(paragraphs, params.max_heading_distance)
            timings[name].append(1000 * (time.perf_counter() - start))
    return statistics.median(timings["ours"]), statistics.median(timings["justext"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="the html folder of the shared data (default: bench/_shared.py's)")
    parser.add_argument("--pages", type=int, help="only the first N pages of each set")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: that the bench still runs")
    args = parser.parse_args()
    if args.smoke:
        args.pages = 10

    args.data = args.data or data_folder(args.smoke) / "html"
    aeb, evaluation = load_aeb(args.data)[:args.pages], load_trafilatura_eval(args.data)[:args.pages]
    print(f"article-extraction benchmark: {len(aeb)} pages; trafilatura eval: {len(evaluation)} pages")
    extractors: dict[str, Extractor | str] = {
        "ours": html_to_text,
        "justext_default": plain_justext,
        "ours_justext_params": lambda html, language: html_to_text(html, language, JUSTEXT_DEFAULTS),
        **optional_extractors(),
    }
    results: dict[str, dict] = {}
    print(f"{'extractor':<22}{'F1':>7}{'P':>7}{'R':>7}{'tune':>7}{'hold':>7}{'empty':>6}"
          f"{'snip':>7}{'with':>7}{'w/o':>7}{'ms/page':>9}")
    for name, extractor in extractors.items():
        if isinstance(extractor, str):
            print(f"{name:<22}{extractor}")
            continue
        aeb_out, aeb_seconds = run(extractor, aeb)
        eval_out, eval_seconds = run(extractor, evaluation)
        result = {**aeb_scores(aeb, aeb_out), **snippets_right(evaluation, eval_out)}
        result["ms_per_page"] = 1000 * statistics.median(aeb_seconds + eval_seconds)
        results[name] = result
        print(f"{name:<22}{result['f1']:7.3f}{result['precision']:7.3f}{result['recall']:7.3f}"
              f"{result['f1_tune_half']:7.3f}{result['f1_holdout_half']:7.3f}{result['empty']:6d}"
              f"{result['snippets_right']:7.3f}{result['must_contain_found']:7.3f}"
              f"{result['must_not_contain_avoided']:7.3f}{result['ms_per_page']:9.1f}")
    print("tune/hold: F1 on the even-/odd-numbered halves (parameters tuned on the even half); snip: share of "
          "trafilatura-eval snippets right (with: must-contain found, w/o: must-not-contain absent)")

    revise_ours_ms, revise_justext_ms = short_run_revision_ms(aeb)
    print(f"worst case, 4,000 short table cells: context revision {revise_ours_ms:.1f} ms (ours) vs "
          f"{revise_justext_ms:.1f} ms (jusText's)")

    ours = results["ours"]

    def other(name: str, key: str) -> float | str:
        return round(results[name][key], 4) if name in results else "not installed"

    print(json.dumps({
        "f1": round(ours["f1"], 4),
        "precision": round(ours["precision"], 4),
        "recall": round(ours["recall"], 4),
        "f1_tune_half": round(ours["f1_tune_half"], 4),
        "f1_holdout_half": round(ours["f1_holdout_half"], 4),
        "snippets_right": round(ours["snippets_right"], 4),
        "trafilatura_f1": other("trafilatura", "f1"),
        "resiliparse_f1": other("resiliparse", "f1"),
        "justext_default_f1": round(results["justext_default"]["f1"], 4),
        "justext_params_f1": round(results["ours_justext_params"]["f1"], 4),
        "trafilatura_snippets_right": other("trafilatura", "snippets_right"),
        "resiliparse_snippets_right": other("resiliparse", "snippets_right"),
        "justext_default_snippets_right": round(results["justext_default"]["snippets_right"], 4),
        "ms_per_page": round(ours["ms_per_page"], 2),
        "justext_default_ms_per_page": round(results["justext_default"]["ms_per_page"], 2),
        "ratio": round(results["justext_default"]["ms_per_page"] / ours["ms_per_page"], 3),
        "short_run_revise_ms": round(revise_ours_ms, 2),
        "justext_short_run_revise_ms": round(revise_justext_ms, 2),
    }))


if __name__ == "__main__":
    main()
