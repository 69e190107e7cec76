#!/usr/bin/env bash
# The demo of `make demo` through spark-submit: sample crawl -> the curation pipeline (every stage,
# dataprep/pipeline.py, into out/documents) -> tokenized shards + manifest (out/demo).
#
#   SPARK_MASTER       the cluster (default local[*]); executors must see out/ at the same path
#   DEMO_SUBMIT_ARGS   extra spark-submit options (memory, --conf key=value, ...)
#   DEMO_RECORDS, DEMO_FILES  size of the sample crawl (default 3000 records in 6 WARC files)
set -euo pipefail
cd "$(dirname "$0")/.."

master=${SPARK_MASTER:-local[*]}
read -r -a submit_opts <<< "${DEMO_SUBMIT_ARGS:-}"
# Absolute: executors open files from their own working folder, not the driver's. infra/blend_demo.yaml
# names the same folders relative to the repository root.
demo=$PWD/out/demo
documents=$PWD/out/documents

submit() {
    spark-submit --master "$master" "${submit_opts[@]}" "$@"
}

if [ ! -f "$demo/crawl/truth.json" ]; then  # written last: a complete crawl from an earlier run is reused
    python -m samplecrawl --out "$demo/crawl" --records "${DEMO_RECORDS:-3000}" \
        --files "${DEMO_FILES:-6}" --seed 1 --overwrite
fi
submit dataprep/jobs/run.py --input "$demo/crawl/*.warc.gz" --out "$documents"
submit infra/spark/run_module.py blending build --config infra/blend_demo.yaml --out "$demo/shards"
python -m blending verify "$demo/shards/manifest.json"
