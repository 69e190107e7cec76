# One entry point for users and CI. Every target sets up the virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export DS_ACCELERATOR ?= cpu
export OMP_NUM_THREADS ?= 1

DEMO := out/demo
DOCUMENTS := out/documents
DEMO_RECORDS ?= 3000
DEMO_FILES ?= 6

.PHONY: setup test demo classifier shards train bench lint lint-docker clean

setup: $(STAMP)

$(STAMP): requirements.txt $(wildcard requirements/*.txt) pyproject.toml
	@command -v java >/dev/null || { echo "Java 17 is required for Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q

lint: setup lint-docker
	$(VENV)/bin/ruff check .

# Dockerfiles (hadolint) and the compose file (compose-spec schema); no Docker engine needed.
lint-docker: setup
	$(VENV)/bin/hadolint docker/*.Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml

# The demo's stages reuse their outputs when inputs and config are unchanged, so a rerun is quick.
# `dataprep run` writes each stage's folder under out/documents (the folder infra/blend*.yaml read) and
# the funnel plot out/documents/funnel.png.
demo: setup $(DEMO)/crawl/truth.json
	$(PY) -m dataprep run --input '$(DEMO)/crawl/*.warc.gz' --out $(DOCUMENTS)
	$(MAKE) --no-print-directory shards BLEND_CONFIG=infra/blend_demo.yaml SHARDS=$(DEMO)/shards

$(DEMO)/crawl/truth.json: | setup
	$(PY) -m dataprep.samplecrawl --out $(DEMO)/crawl --records $(DEMO_RECORDS) --files $(DEMO_FILES) --seed 1 --overwrite

# The quality stage's default classifier, from the training texts the repository ships: model.bin and
# metrics.json (cross-validated accuracy, length-only baseline, held-out accuracy). `python -m dataprep
# run` trains the same model by itself when no --model is given (cached, see dataprep/quality/default_model.py).
CLASSIFIER ?= out/classifier
classifier: setup
	$(PY) -m dataprep train-classifier --out $(CLASSIFIER)

BLEND_CONFIG ?= infra/blend.yaml
SHARDS ?= out/shards
shards: setup
	$(PY) -m blending build --config $(BLEND_CONFIG) --out $(SHARDS)
	$(PY) -m blending preview $(SHARDS)/manifest.json --samples 10000 --seq-len 2048

# `make train`: tiny-cpu, TP2 x PP2 x DP2 (8 gloo processes), on the demo's shards until the validation
# loss beats the unigram model of the same data; prints both. Running it again resumes the run.
TRAIN_MANIFEST ?= $(DEMO)/shards/manifest.json
TRAIN_OUT ?= out/train/tiny-cpu
TRAIN_ARGS ?=
train: setup
	@test -f $(TRAIN_MANIFEST) || { echo "no $(TRAIN_MANIFEST): run 'make demo' first, or set TRAIN_MANIFEST=..."; exit 1; }
	$(PY) -m torch.distributed.run --standalone --nproc-per-node 8 -m trainer.train --preset tiny-cpu \
		--manifest $(TRAIN_MANIFEST) --out $(TRAIN_OUT) --resume --target-val-loss unigram $(TRAIN_ARGS)
	@echo "metrics: $(TRAIN_OUT)/metrics.csv, $(TRAIN_OUT)/valid.csv, $(TRAIN_OUT)/loss.png, tensorboard --logdir $(TRAIN_OUT)/tensorboard"

# Every bench/*.py and *.sh (or BENCH="bench/a.py ..."): figures into bench/results.json, README table from it.
BENCH ?=
bench: setup
	$(PY) -m pip install -q -r requirements-bench.txt  # reference extractors, for the comparisons only
	$(PY) bench/_results.py run $(BENCH)

clean:
	rm -rf out .pytest_cache .ruff_cache
