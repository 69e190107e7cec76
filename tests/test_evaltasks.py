"""The evaluation task loaders on the files the repository ships: item counts, known items, formats."""

from __future__ import annotations

import json
import lzma

import pytest

from blending.evaltasks import (
    FIELDS,
    TaskFormatError,
    load_jsonl_task,
    load_task,
    shipped_path,
    shipped_tasks,
)

# Items per task and split in the shipped files (the datasets' published sizes; RACE: the questions of
# the 15 passage files of the shipped sample).
COUNTS = {
    "lambada": {"test": 5153},
    "hellaswag": {"validation": 10042},
    "piqa": {"validation": 1838},
    "winogrande": {"validation": 1267},
    "boolq": {"validation": 3270},
    "copa": {"validation": 100},
    "arc_easy": {"test": 2376},
    "openbookqa": {"test": 500},
    "wsc": {"test": 273},
    "anli_r1": {"test": 1000},
    "anli_r2": {"test": 1000},
    "anli_r3": {"test": 1200},
    "wic": {"validation": 638, "test": 1400},
    "race": {"test": 22, "validation": 17, "train": 22},
}


@pytest.fixture(scope="module")
def tasks():
    return {name: load_task(name) for name in shipped_tasks()}


def test_every_shipped_task_loads_with_its_published_size(tasks):
    assert sorted(shipped_tasks()) == sorted(COUNTS) == sorted(FIELDS)
    for name, items in tasks.items():
        by_split: dict[str, int] = {}
        for item in items:
            by_split[item.split] = by_split.get(item.split, 0) + 1
        assert by_split == COUNTS[name], name
        for split in by_split:
            assert [i.index for i in items if i.split == split] == list(range(by_split[split])), name


def test_items_are_well_formed(tasks):
    for name, items in tasks.items():
        for item in items:
            assert item.task == name
            assert item.choices and all(c[:1] in (" ", "\n") for c in item.choices), (name, item.index)
            assert 0 <= item.gold < len(item.choices), (name, item.index)
            assert item.texts and all(isinstance(t, str) and t for t in item.texts), (name, item.index)


def test_lambada_target_is_the_last_word(tasks):
    item = tasks["lambada"][0]
    assert item.context.startswith("In my palm is a clear stone, and inside it is a small ivory statuette.")
    assert item.context.endswith("I don't care about")
    assert item.choices == (" signs",) and item.gold == 0
    assert item.context + item.choices[0] == item.texts[0]
    # The target is the last space-separated word, quotes included (lm-evaluation-harness's split).
    texts = [i for i in tasks["lambada"] if i.texts[0].endswith('whisper, "Nadia')]
    assert len(texts) == 1 and texts[0].choices == (' "Nadia',)


def test_piqa_counts_goal_and_solutions(tasks):
    item = tasks["piqa"][0]
    goal = "How do I ready a guinea pig cage for it's new occupants?"
    assert item.context == f"Question: {goal}\nAnswer:"
    assert item.gold == 0 and len(item.choices) == 2
    assert item.choices[0].startswith(" Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper")
    assert item.texts == (goal, item.choices[0][1:], item.choices[1][1:])


def test_hellaswag_context_counts_without_its_activity_label(tasks):
    item = tasks["hellaswag"][0]
    assert item.context == "Roof shingle removal: A man is sitting on a roof. he"
    assert item.gold == 3 and item.choices[3] == " starts pulling up roofing on a roof."
    assert item.texts[0] == "A man is sitting on a roof. he"
    assert item.texts[1:] == tuple(c[1:] for c in item.choices)


def test_race_counts_article_and_question(tasks):
    first = tasks["race"][0]
    assert first.split == "test" and first.context.startswith("Article: ")
    assert first.texts[0] in first.context and first.texts[1] in first.context
    assert len(first.choices) == 4 and first.texts == (first.texts[0], first.context.split("Question: ")[-1][:-8])
    # All questions of one passage share its article.
    assert len({i.texts[0] for i in tasks["race"]}) == 15


def test_partial_sentence_tasks_split_at_the_shared_words(tasks):
    item = tasks["winogrande"][0]
    assert item.context == "Sarah was a much better surgeon than Maria so"
    assert item.choices == (" Sarah always got the easier cases.", " Maria always got the easier cases.")
    assert item.gold == 1
    assert item.texts == tuple(item.context + c for c in item.choices)
    # One option a prefix of the other ("Joe" / "Joe's uncle"): cut at the last shared space.
    joe = next(i for i in tasks["wsc"] if i.context.endswith("beat him at tennis, even though"))
    assert joe.choices[0] == " Joe is 30 years younger." and joe.choices[1] == " Joe's uncle is 30 years younger."


def test_other_formats_known_items(tasks):
    boolq = tasks["boolq"][0]
    assert boolq.context.endswith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    assert boolq.choices == (" no", " yes") and boolq.gold == 0
    assert boolq.texts[0].startswith("All biomass goes through") and not boolq.texts[0].startswith("Passage")
    copa = tasks["copa"][0]
    assert copa.context == "The man turned on the faucet, therefore" and copa.texts[0] == "The man turned on the faucet"
    anli = tasks["anli_r1"][0]
    assert anli.choices == (" True", " Neither", " False") and anli.gold == 0  # label "e"
    assert anli.texts[1] == "The first Ernest Jones store was opened on the continent of Europe."
    wic = next(i for i in tasks["wic"] if i.split == "validation" and i.index == 2)
    assert "Is the word 'Hook' used" in wic.context and wic.gold == 1
    assert wic.texts == ("Hook a fish .", "He hooked a snake accidentally , and was so scared he dropped his rod into the water .")


def test_a_copy_in_the_same_format_loads_the_same(tmp_path, tasks):
    plain = tmp_path / "piqa.jsonl"
    plain.write_bytes(lzma.decompress(shipped_path("piqa").read_bytes()))
    assert load_task("piqa", plain) == tasks["piqa"]
    with pytest.raises(FileNotFoundError, match="nope"):
        load_task("piqa", tmp_path / "nope.jsonl")
    with pytest.raises(KeyError, match="unknown task"):
        load_task("squad")


def test_jsonl_task_with_a_named_field(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"body": "first text of the task", "id": 1}, {"body": "second", "id": 2}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = load_jsonl_task("mine", path, field="body")
    assert [(i.task, i.index, i.texts, i.choices, i.gold) for i in items] == [
        ("mine", 0, ("first text of the task",), (), None),
        ("mine", 1, ("second",), (), None),
    ]
    with pytest.raises(TaskFormatError, match=r"mine.jsonl:1: no string field 'text'"):
        load_jsonl_task("mine", path)


def test_a_malformed_file_names_the_line(tmp_path):
    path = tmp_path / "anli.jsonl"
    path.write_text(json.dumps({"context": "a", "hypothesis": "b", "label": "e"}) + "\n" + json.dumps({"context": "a"}) + "\n")
    with pytest.raises(TaskFormatError, match=r"anli.jsonl:2: missing hypothesis, label"):
        load_task("anli_r1", path)
