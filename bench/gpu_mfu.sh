#!/usr/bin/env bash
# Model FLOPs utilisation of the trainer on one GPU: the `1b` preset (GPT-3 XL shape, 1.3B parameters,
# seq 2048) in bf16 for a few minutes on shards made from the real prose in ../shared/data.
#
#   bash bench/gpu_mfu.sh                       # one command; about 10 minutes at most
#   bash bench/gpu_mfu.sh --smoke               # that it still runs: half a minute of training, 1 warm-up step
#
# Environment (all optional):
#   PYTHON    interpreter with the trainer's requirements and a CUDA torch (default: .venv/bin/python,
#             else python3)
#   WHEELS    a folder of wheels: a fresh venv is made from requirements/trainer.txt with
#             `pip install --no-index --find-links $WHEELS` (nothing is downloaded)
#   MINUTES   training time (default 4); the run stops at the first step end after it
#   PRESET    trainer preset (default 1b); EXTRA_ARGS: more trainer arguments (e.g. --set ...)
#   DATA      folder of the shared data (default: ../shared/data beside the repository)
#   OUT       work folder (default: a fresh temporary folder)
#   ALLOW_CPU=1  run the plumbing on a machine without a GPU (no MFU then; for checking the script)
#
# Throughput is the median over the steps after the first WARMUP_STEPS (default 5) of
# tokens/s and of TFLOP/s per GPU by the Narayanan formula (72 B s l h^2 (1 + s/6h + V/16lh) per
# iteration without recomputation; the preset stores all activations). MFU = that / the GPU's dense
# bf16 peak. The last line is one JSON object: mfu, tokens_per_s, tflops_per_gpu, goal (0.45) and
# ratio = mfu / goal.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA:-$ROOT/../shared/data}"
if [[ "${1:-}" == "--smoke" ]]; then MINUTES="${MINUTES:-0.5}" WARMUP_STEPS="${WARMUP_STEPS:-1}"; fi
MINUTES="${MINUTES:-4}"
PRESET="${PRESET:-1b}"
WARMUP_STEPS="${WARMUP_STEPS:-5}"
OUT="${OUT:-$(mktemp -d -t gpu_mfu.XXXXXX)}"
mkdir -p "$OUT"

if [[ -n "${WHEELS:-}" ]]; then
    python3 -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install -q --no-index --find-links "$WHEELS" -r "$ROOT/requirements/trainer.txt"
    PYTHON="$OUT/venv/bin/python"
fi
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$ROOT/.cache/torch_extensions}"
export TOKENIZERS_PARALLELISM=false

device="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")')"
if [[ "$device" == "cpu" && "${ALLOW_CPU:-0}" != "1" ]]; then
    echo "no CUDA GPU visible to $PYTHON (torch $("$PYTHON" -c 'import torch; print(torch.__version__)'))" >&2
    exit 77  # cannot run here: make bench reports it as skipped
fi
if [[ "$device" == "cpu" ]]; then export DS_ACCELERATOR=cpu OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"; fi
echo "device: $device | preset $PRESET | $MINUTES min | work folder $OUT"

# 1. Shards: real prose (Shakespeare, three Gutenberg novels, WikiText-2) as three sources, a byte-level
#    BPE of about GPT-2's size trained on them, Megatron shards and manifest through blending's writer.
"$PYTHON" - "$DATA" "$OUT/shards" <<'PY'
import hashlib, sys, zipfile
from pathlib import Path

from blending.indexed import IndexedDatasetWriter
from blending.manifest import manifest_dict, write_manifest
from blending.tokenizer import encode_documents, eod_id, token_dtype, train_bpe, vocab_size

data, out = Path(sys.argv[1]) / "prose", Path(sys.argv[2])
if (out / "manifest.json").exists():
    sys.exit(0)
def paragraphs(text):
    return [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if len(p.strip()) > 40]
sources = {
    "shakespeare": paragraphs((data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")),
    "gutenberg": [p for f in sorted((data / "gutenberg").glob("*.txt"))
                  for p in paragraphs(f.read_bytes().decode("utf-8", errors="replace"))],
    "wikitext": [p for f in ("valid.txt", "test.txt")
                 for p in paragraphs((data / "wikitext-2" / f).read_text(encoding="utf-8"))],
}
out.mkdir(parents=True, exist_ok=True)
tokenizer = train_bpe((d for docs in sources.values() for d in docs), vocab_size=50257, min_frequency=1)
tokenizer.save(str(out / "tokenizer.json"))
eod, dtype = eod_id(tokenizer), token_dtype(vocab_size(tokenizer))
entries = {}
for name, docs in sources.items():
    entry = {"weight": {"shakespeare": 0.3, "gutenberg": 0.4, "wikitext": 0.3}[name]}
    for split, texts in (("train", [d for i, d in enumerate(docs) if i % 50]), ("valid", docs[::50])):
        (out / name).mkdir(exist_ok=True)
        writer = IndexedDatasetWriter(out / name / f"{split}_00000", dtype)
        writer.add_documents(*encode_documents(tokenizer, texts, eod, dtype))
        shard = writer.close()
        entry[split] = [{"prefix": f"{name}/{split}_00000", "documents": shard.documents, "tokens": shard.tokens,
                         "bin": {"bytes": shard.bin.bytes, "sha256": shard.bin.sha256},
                         "idx": {"bytes": shard.idx.bytes, "sha256": shard.idx.sha256}}]
    entries[name] = entry
tok = {"file": "tokenizer.json", "sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
       "vocab_size": vocab_size(tokenizer), "eod_id": eod}
write_manifest(out, manifest_dict(tok, entries))
print(f"shards: vocabulary {vocab_size(tokenizer)}, "
      f"{sum(e['train'][0]['tokens'] for e in entries.values()):,} training tokens in {out}")
PY

# 2. Train for MINUTES (no checkpoints: a 1.3B checkpoint with its optimizer is ~20 GB of writes).
rm -rf "$OUT/run"
budget=$(awk -v m="$MINUTES" 'BEGIN { print int(m * 60 + 300) }')  # start-up and the last step on top
# shellcheck disable=SC2086
timeout --signal=TERM --kill-after=30 "$budget" "$PYTHON" -m trainer.train --preset "$PRESET" \
    --manifest "$OUT/shards/manifest.json" --out "$OUT/run" --no-save --exit-duration-mins "$MINUTES" \
    --set run.log_interval=1 --set run.eval_interval=0 ${EXTRA_ARGS:-} 2>&1 | tee "$OUT/train.log" \
    | grep -v "Warning\|warnings.warn" || true  # a run cut by the time limit still has its metrics

# 3. Medians after warm-up, and the JSON line.
"$PYTHON" - "$OUT/run/metrics.csv" "$WARMUP_STEPS" "$device" <<'PY'
import csv, json, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1])))
warmup, device = int(sys.argv[2]), sys.argv[3]
steady = rows[warmup:] or rows
if not steady:
    print(json.dumps({"mfu": None, "error": "no step finished"}))
    sys.exit(1)
def median(key):
    values = [float(r[key]) for r in steady if r[key] not in ("", None)]
    return statistics.median(values) if values else None
mfu = median("mfu")
result = {"mfu": None if mfu is None else round(mfu, 4), "tokens_per_s": round(median("tokens_per_s"), 1),
          "tflops_per_gpu": round(median("tflops_per_gpu"), 2), "steps_measured": len(steady),
          "global_batch": int(steady[-1]["global_batch"]), "device": device, "goal": 0.45,
          "ratio": None if mfu is None else round(mfu / 0.45, 4)}
print(f"median over {len(steady)} steps: {result['tokens_per_s']:,.0f} tokens/s, "
      f"{result['tflops_per_gpu']} TFLOP/s per GPU, MFU {result['mfu']}")
print(json.dumps(result))
PY
