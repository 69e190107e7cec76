#!/usr/bin/env bash
# A Spark standalone worker joining a master, in the foreground; one per machine.
#
#   infra/spark/worker.sh spark://MASTER_HOST:7077
#
#   SPARK_WORKER_HOST         address to bind and advertise (default: Spark's choice, this machine's address)
#   SPARK_WORKER_CORES        cores offered to executors (default: all)
#   SPARK_WORKER_MEMORY       memory offered to executors (default: all but 1 GB)
#   SPARK_WORKER_DIR          executors' working folders and logs (/tmp/spark-worker); a local disk
#   SPARK_WORKER_WEBUI_PORT   8081
#
# Every worker needs the project's Python environment at the same path as the driver's PYSPARK_PYTHON
# (or an archive shipped with spark-submit, see infra/README.md) and the stage folders at the same path.
set -euo pipefail
if [ $# -ne 1 ] || [[ $1 != spark://* ]]; then
    echo "usage: $0 spark://MASTER_HOST:PORT" >&2
    exit 2
fi
options=(--work-dir "${SPARK_WORKER_DIR:-/tmp/spark-worker}" --webui-port "${SPARK_WORKER_WEBUI_PORT:-8081}")
[ -n "${SPARK_WORKER_HOST:-}" ] && options+=(--host "$SPARK_WORKER_HOST")
[ -n "${SPARK_WORKER_CORES:-}" ] && options+=(--cores "$SPARK_WORKER_CORES")
[ -n "${SPARK_WORKER_MEMORY:-}" ] && options+=(--memory "$SPARK_WORKER_MEMORY")
exec spark-class org.apache.spark.deploy.worker.Worker "${options[@]}" "$1"
