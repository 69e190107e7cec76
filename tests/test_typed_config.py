"""The one type check of every config (blending/typed_config.py) and the safe-name rule, on real files."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from blending.typed_config import ConfigError, check_safe_name, load_dataclass
from dataprep.config import DataprepConfig
from dataprep.pipeline import RunConfigError, load_run_config, stage_class_at
from trainer.config import TrainConfig, load_overrides_file


@dataclass
class Inner:
    size: int = 1
    names: tuple[str, ...] = ("a",)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    ratio: float = 0.5
    label: str | None = None
    flag: bool = False


@pytest.mark.parametrize("raw, message", [
    ({"size": 3}, "x.yaml: size: unknown key (known: inner, ratio, label, flag)"),
    ({"inner": {"size": "twenty"}}, "x.yaml: inner.size: expected an integer, got 'twenty'"),
    ({"inner": 5}, "x.yaml: inner: expected a mapping of size, names, got 5"),
    ({"inner": {"names": ["a", 3]}}, "x.yaml: inner.names[1]: expected a string, got 3"),
    ({"inner": {"names": 3}}, "x.yaml: inner.names: expected a list of strings, got 3"),
    ({"ratio": "x"}, "x.yaml: ratio: expected a number, got 'x'"),
    ({"ratio": True}, "x.yaml: ratio: expected a number, got True"),
    ({"label": 7}, "x.yaml: label: expected a string or null, got 7"),
    ({"flag": "yes"}, "x.yaml: flag: expected true or false, got 'yes'"),
    ([1, 2], "x.yaml: the file: expected a mapping of inner, ratio, label, flag, got [1, 2]"),
])
def test_a_wrong_key_or_type_names_the_file_the_key_and_both_types(raw, message):
    with pytest.raises(ConfigError) as caught:
        load_dataclass(Outer, raw, "x.yaml")
    assert str(caught.value) == message


def test_values_of_the_right_type_are_converted():
    loaded = load_dataclass(Outer, {"inner": {"size": 1e3, "names": "b"}, "ratio": 2, "label": None}, "x.yaml")
    assert loaded == Outer(Inner(1000, ("b",)), 2.0, None, False)
    assert isinstance(loaded.ratio, float) and isinstance(loaded.inner.size, int)
    assert load_dataclass(Outer, {"inner": None, "label": "l"}, "x.yaml") == Outer(label="l")


@pytest.mark.parametrize("text, message", [
    ("dedup: {bands: twenty}\n", "c.yaml: dedup.bands: expected an integer, got 'twenty'"),
    ("dedup: 5\n", "c.yaml: dedup: expected a mapping of num_perm, bands,"),
    ("cleanup: {languages: [en, 3]}\n", "c.yaml: cleanup.languages[1]: expected a string, got 3"),
    ("dedupe: {bands: 3}\n", "c.yaml: dedupe: unknown key"),
    ("dedup: [\n", "c.yaml: not valid YAML"),
    ("- a\n", "c.yaml: expected a mapping of config sections, got ['a']"),
])
def test_dataprep_config_is_checked_at_load(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        DataprepConfig.load(path)
    assert str(caught.value).startswith(str(tmp_path / message))


def test_a_trainer_overrides_file_is_checked_by_type(tmp_path):
    path = tmp_path / "run.yaml"
    cfg = TrainConfig()
    path.write_text("model: {num_layers: twenty}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: model.num_layers: expected an integer, got 'twenty'"):
        load_overrides_file(cfg, path)
    path.write_text("model: {num_layerz: 2}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: model.num_layerz: unknown key"):
        load_overrides_file(cfg, path)
    path.write_text("model: {num_layers: 2, init_std: null}\nseed: 7\noptimizer: {lr: 1e-5}\ntrain_tokens: 2e6\n")
    load_overrides_file(cfg, path)
    assert (cfg.model.num_layers, cfg.model.init_std, cfg.seed, cfg.model.hidden_size) == (2, None, 7, 20480)
    assert (cfg.optimizer.lr, cfg.train_tokens) == (1e-5, 2_000_000) and isinstance(cfg.train_tokens, int)


@pytest.mark.parametrize("name", ["cc-2020_50.v1", "a", "B9"])
def test_safe_names_pass(name):
    assert check_safe_name(name, "name") == name


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "a..b", ".hidden", "-x", "", "a b", 5, None])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ConfigError, match="name: expected a name of letters"):
        check_safe_name(name, "name")


@pytest.mark.parametrize("source, message", [
    ("{name: ../../escape, inputs: [x]}", r"sources\[0\].name: expected a name of letters"),
    ("{name: a, inputs: [x], kind: crawl}", r"sources\[0\].kind: 'crawl' is not one of"),
    ("{name: a, inputs: [x], max_files: many}", r"sources\[0\].max_files: expected an integer, got 'many'"),
    ("{name: a, inputs: [x], colour: red}", r"sources\[0\].colour: unknown key"),
    ("{name: a, kind: ingest, inputs: [x], format: xml}", r"sources\[0\].format: expected one of"),
    ("{name: a}", r"sources\[0\].inputs: missing"),
    ("{name: a, inputs: [x], skip: [dedup]}", r"sources\[0\].skip: \['dedup'\]: only the per-document"),
])
def test_pipeline_sources_are_checked_at_load(tmp_path, source, message):
    path = tmp_path / "run.yaml"
    path.write_text(f"sources:\n  - {source}\n")
    with pytest.raises((ConfigError, RunConfigError), match=message):
        load_run_config(path)


def test_a_good_source_entry_keeps_its_stage_options(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("sources:\n  - {name: books, kind: ingest, inputs: b.jsonl, format: jsonl, skip: quality}\n")
    _, [source] = load_run_config(path)
    assert (source.name, source.kind, source.inputs, source.options, source.skip) == (
        "books", "ingest", ["b.jsonl"], {"format": "jsonl"}, ["quality"])


class EscapingStage:
    name = "../escape"  # would write its folder outside the run's


def test_a_stage_whose_name_is_not_a_safe_folder_name_is_refused():
    with pytest.raises(ConfigError, match="the name of stage tests.test_typed_config:EscapingStage: expected a name"):
        stage_class_at(f"{__name__}:EscapingStage")
