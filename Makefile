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

.PHONY: setup test test-fast demo ablation classifier shards train bench lint lint-docker compose-up compose-down clean

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

# Everything but the tests marked slow (multi-process training, SIGKILLed jobs, subprocess-heavy CLI
# checks, the Spark standalone cluster): under 3 minutes on 2 cores. `make test` runs them all.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup lint-docker
	$(VENV)/bin/ruff check .

# Dockerfiles (hadolint) and the compose file (compose-spec schema); no Docker engine needed.
lint-docker: setup
	$(VENV)/bin/hadolint docker/*.Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml

# `make demo`: sample crawl -> curation pipeline -> shards -> training -> evaluation -> report, under $(DEMO).
# Every step reuses what an earlier run completed (same inputs and config), so a second run takes seconds.
# The shards' preview is drawn for tiny-cpu's budget (300 steps x 32 samples x 128 tokens).
DEMO_EVAL_TASKS ?= lambada,piqa,hellaswag,winogrande,boolq
DEMO_EVAL_LIMIT ?= 500
DEMO_EVAL_ARGS = --tasks $(DEMO_EVAL_TASKS) --shots 0 --limit $(DEMO_EVAL_LIMIT)
demo: setup
	@echo "== 1/6 sample crawl: $(DEMO_RECORDS) WARC records in $(DEMO_FILES) files -> $(DEMO)/crawl (built once)"
	@$(MAKE) --no-print-directory $(DEMO)/crawl/truth.json
	@echo "== 2/6 curation: python -m dataprep run, every stage of dataprep/pipeline.py -> $(DOCUMENTS)/<stage>/"
	$(PY) -m dataprep run --input '$(DEMO)/crawl/*.warc.gz' --out $(DOCUMENTS) --keep-dropped --measure-cost
	@echo "== 3/6 shards: BPE tokenizer, Megatron .bin/.idx per split, manifest.json -> $(DEMO)/shards"
	@$(MAKE) --no-print-directory shards BLEND_CONFIG=infra/blend_demo.yaml SHARDS=$(DEMO)/shards \
		SHARDS_ARGS=--replace-changed PREVIEW_ARGS="--samples 9600 --seq-len 128"
	@echo "== 4/6 training: tiny-cpu, TP2 x PP2 x DP2, until the validation loss reaches $(TRAIN_TARGET) (unigram-N%: N% below the unigram model's)"
	@if [ -f $(DEMO)/train/summary.json ] && [ $(DEMO)/shards/manifest.json -nt $(DEMO)/train/summary.json ]; then \
		echo "the shards changed since $(DEMO)/train was trained: training again from step 0"; rm -rf $(DEMO)/train; fi
	@$(MAKE) --no-print-directory train TRAIN_OUT=$(DEMO)/train TRAIN_MANIFEST=$(DEMO)/shards/manifest.json
	@echo "== 5/6 evaluation: $(DEMO_EVAL_ARGS), clean subset from the decontamination stage -> $(DEMO)/train/eval.json"
	@echo '$(DEMO_EVAL_ARGS)' | cmp -s - $(DEMO)/train/eval.args || echo '$(DEMO_EVAL_ARGS)' > $(DEMO)/train/eval.args
	@$(MAKE) --no-print-directory $(DEMO)/train/eval.json
	@echo "== 6/6 report: funnel, cost estimate, blend, training, evaluation -> $(DEMO)/report/index.html"
	@$(MAKE) --no-print-directory $(DEMO)/estimate/estimate.json
	$(PY) -m reporting report $(DEMO) $(DOCUMENTS) --out $(DEMO)/report

# The cost estimate the report sets beside the run's own cost: the pipeline on $(DEMO_ESTIMATE_SAMPLE) of the crawl's
# files (docs/estimate.md), tokens counted with the demo's tokenizer. Made once per crawl and tokenizer.
DEMO_ESTIMATE_SAMPLE ?= 2
$(DEMO)/estimate/estimate.json: $(DEMO)/crawl/truth.json $(DEMO)/tokenizer/tokenizer.json
	$(PY) -m dataprep estimate --input '$(DEMO)/crawl/*.warc.gz' --sample $(DEMO_ESTIMATE_SAMPLE) \
		--tokenizer $(DEMO)/tokenizer/tokenizer.json --out $(DEMO)/estimate

# Scored again when the run, the items the decontamination stage found, or the settings change.
$(DEMO)/train/eval.json: $(DEMO)/train/summary.json $(DOCUMENTS)/decontaminate/task_items_found.jsonl $(DEMO)/train/eval.args
	$(PY) -m trainer.evaluate --checkpoint $(DEMO)/train $(DEMO_EVAL_ARGS) \
		--contaminated $(DOCUMENTS)/decontaminate/task_items_found.jsonl --out $@

# `make ablation` (after `make demo`): does each curation stage help? The tiny-cpu model, one process per
# run, trained on the same $(ABLATION_TOKENS) tokens (80 steps) of the documents after each stage, seeds
# 1 and 2, scored on held-out prose and the first 50 items of the downstream tasks (python -m
# trainer.ablate, docs/ablation.md); then the report again, with its Ablation section. Runs are reused.
ABLATION_OUT ?= $(DEMO)/ablation
ABLATION_TOKENS ?= 163840
ABLATION_EVAL_LIMIT ?= 50
ABLATION_ARGS ?=
ablation: setup
	@test -d $(DOCUMENTS) || { echo "no $(DOCUMENTS): run 'make demo' first"; exit 1; }
	$(PY) -m trainer.ablate --documents $(DOCUMENTS) --out $(ABLATION_OUT) --tokens $(ABLATION_TOKENS) \
		--eval-limit $(ABLATION_EVAL_LIMIT) $(ABLATION_ARGS)
	$(PY) -m reporting report $(DEMO) $(DOCUMENTS) --out $(DEMO)/report

$(DEMO)/crawl/truth.json: | setup
	$(PY) -m samplecrawl --out $(DEMO)/crawl --records $(DEMO_RECORDS) --files $(DEMO_FILES) --seed 1 --overwrite

# The quality stage's default classifier, from the training texts the repository ships: model.bin and
# metrics.json (cross-validated accuracy, length-only baseline, held-out accuracy). `python -m dataprep
# run` trains the same model by itself when no --model is given (cached, see dataprep/quality/default_model.py).
CLASSIFIER ?= out/classifier
classifier: setup
	$(PY) -m dataprep train-classifier --out $(CLASSIFIER)

BLEND_CONFIG ?= infra/blend.yaml
SHARDS ?= out/shards
SHARDS_ARGS ?=
PREVIEW_ARGS ?= --samples 10000 --seq-len 2048
shards: setup
	$(PY) -m blending build --config $(BLEND_CONFIG) --out $(SHARDS) $(SHARDS_ARGS)
	$(PY) -m blending preview $(SHARDS)/manifest.json $(PREVIEW_ARGS)

# `make train`: tiny-cpu, TP2 x PP2 x DP2 (8 gloo processes), on the demo's shards until the validation
# loss is 15% below the unigram model's of the same data (a model that only learnt word frequencies
# cannot get there). Running it again resumes a stopped run and reuses a finished one.
TRAIN_MANIFEST ?= $(DEMO)/shards/manifest.json
TRAIN_OUT ?= $(DEMO)/train
TRAIN_TARGET ?= unigram-15%
TRAIN_ARGS ?=
train: setup
	@test -f $(TRAIN_MANIFEST) || { echo "no $(TRAIN_MANIFEST): run 'make demo' first, or set TRAIN_MANIFEST=..."; exit 1; }
	$(PY) -m torch.distributed.run --standalone --nproc-per-node 8 -m trainer.train --preset tiny-cpu \
		--manifest $(TRAIN_MANIFEST) --out $(TRAIN_OUT) --resume --target-val-loss $(TRAIN_TARGET) $(TRAIN_ARGS)
	@echo "metrics: $(TRAIN_OUT)/metrics.csv, $(TRAIN_OUT)/valid.csv, $(TRAIN_OUT)/loss.png, tensorboard --logdir $(TRAIN_OUT)/tensorboard"

# The stack in containers (docker/compose.yaml): Spark master + workers, `curate`, then the trainer of
# the `gpu` profile where nvidia-smi finds a GPU, else of the `cpu` profile. A second `up` reuses
# what the first completed. The containers keep running until `make compose-down`.
COMPOSE := docker compose -f docker/compose.yaml
COMPOSE_PROFILE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
COMPOSE_TRAINER = $(if $(filter gpu,$(COMPOSE_PROFILE)),trainer,trainer-cpu)
compose-up:
	$(COMPOSE) --profile $(COMPOSE_PROFILE) build
	$(COMPOSE) --profile $(COMPOSE_PROFILE) up --detach --wait spark-master spark-worker
	$(COMPOSE) --profile $(COMPOSE_PROFILE) run --rm curate
	$(COMPOSE) --profile $(COMPOSE_PROFILE) run --rm --no-deps $(COMPOSE_TRAINER)
	@echo "report: in the data volume, out/demo/report/index.html ($(COMPOSE) run --rm curate ls out/demo/report)"

compose-down:
	$(COMPOSE) --profile cpu --profile gpu down

# Every bench/*.py and *.sh (or BENCH="bench/a.py ..."): figures into bench/results.json, README table from it.
BENCH ?=
bench: setup
	$(PY) -m pip install -q -r requirements-bench.txt  # reference extractors, for the comparisons only
	$(PY) bench/_results.py run $(BENCH)

clean:
	rm -rf out .pytest_cache .ruff_cache
