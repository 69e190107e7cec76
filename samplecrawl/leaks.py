"""Benchmark text quoted the way the web quotes it: a quiz page, a forum post copying a question, a study
guide. The demo's decontamination stage then has something to find.

A leaked page is an ordinary article with one quote block in the middle. The block holds either a whole
decontamination text of a task item (13 words or more: the stage must find it, cut it out and list the
item) or a fragment of one shorter than 13 words, which must stay. Items are drawn from the first
`leak_items_per_task` of each task, the ones the demo evaluates, so its clean subset leaves them out.
"""

from __future__ import annotations

import functools
import random

from blending.evaltasks import load_task
from dataprep.decontaminate.tokens import word_spans, words

# Words as the decontamination stage counts them (\w+ runs: "didn't" is two).
MIN_FOUND_WORDS = 13  # the decontamination n-gram: a quote this long is found
MAX_QUOTE_WORDS = 150
FRAGMENT_WORDS = (6, 12)  # a fragment is shorter than the n-gram
USERS = ("quizmaster77", "jenny_r", "studybuddy", "m.okafor", "throwaway_4821", "prof_lindqvist")


@functools.cache
def task_texts(task: str, items: int) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(index, split, texts) of the first `items` items of a shipped task."""
    return tuple((item.index, item.split, item.texts) for item in load_task(task)[:items])


def plan_leak(rng: random.Random, tasks: tuple[str, ...], items: int, fragment_share: float) -> dict:
    """Which item a page quotes, how, and whether the quote is long enough to be found."""
    task = rng.choice(tasks)
    candidates = [(index, split, text) for index, split, texts in task_texts(task, items) for text in texts
                  if MIN_FOUND_WORDS + FRAGMENT_WORDS[1] <= len(words(text)) <= MAX_QUOTE_WORDS]
    index, split, text = rng.choice(candidates)
    found = rng.random() >= fragment_share
    if not found:  # a run of whole words, cut from the text with its punctuation
        spans = word_spans(text)
        size = rng.randint(*FRAGMENT_WORDS)
        start = rng.randrange(len(spans) - size + 1)
        text = text[spans[start][0] : spans[start + size - 1][1]]
    return {"task": task, "split": split, "index": index, "text": text, "found": found,
            "style": rng.choice(("quiz", "forum", "study_guide")), "words": len(words(text))}


def quote_block(leak: dict, page_index: int) -> str:
    """The paragraph that carries the quote, in the page's style."""
    text, style = leak["text"], leak["style"]
    if style == "quiz":
        return f"Quiz time, question {page_index % 20 + 1}: {text} Think about it before you scroll down for the answer."
    if style == "forum":
        user = USERS[page_index % len(USERS)]
        return f"Posted by {user}: I copied this from a test we had today, can anyone explain it? \"{text}\""
    return f"Study guide, practice item {page_index % 50 + 1}. {text} Review this one before the exam."
