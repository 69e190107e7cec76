#!/usr/bin/env bash
# The trainer side of the demo (docker/compose.yaml's trainer services): train on the shards `curate`
# wrote until the validation loss is 15% below the unigram model's, then write the report.
#
#   TRAIN_DEVICE   cpu: the tiny-cpu preset, TP2 x PP2 x DP2 on 8 gloo processes (default)
#                  gpu: TRAIN_PRESET (default 1b) on every GPU through the deepspeed launcher
# A finished run is reused (the trainer says so and exits); a stopped one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=out/demo/shards/manifest.json
run=out/demo/train
if [ ! -f "$manifest" ]; then
    echo "no $manifest: the curate service writes it (docker compose ... up curate)" >&2
    exit 1
fi
if [ "${TRAIN_DEVICE:-cpu}" = gpu ]; then
    deepspeed --module trainer.train --preset "${TRAIN_PRESET:-1b}" --manifest "$manifest" --out "$run-gpu" \
        --resume --target-val-loss unigram-15%
else
    torchrun --standalone --nproc-per-node 8 -m trainer.train --preset tiny-cpu --manifest "$manifest" \
        --out "$run" --resume --target-val-loss unigram-15%
fi
python -m reporting report out/demo out/documents --out out/demo/report
