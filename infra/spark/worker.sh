#!/usr/bin/env bash
# A Spark standalone worker joining a master, in the foreground; one per machine.
#
#   infra/spark/worker.sh spark://MASTER_HOST:7077
#
#   SPARK_WORKER_HOST         address to bind and advertise (default: 127.0.0.1 for a master on loopback,
#                             else Spark's choice, this machine's address)
#   SPARK_LOCAL_IP            address of the status page and the block manager (default: as the worker's)
#   SPARK_WORKER_CORES        cores offered to executors (default: all)
#   SPARK_WORKER_MEMORY       memory offered to executors (default: all but 1 GB)
#   SPARK_WORKER_DIR          executors' working folders and logs (/tmp/spark-worker); a local disk
#   SPARK_WORKER_WEBUI_PORT   8081
#   SPARK_SECRET_FILE         the master's secret, copied here (secret.sh)
#
# Every worker needs the project's Python environment at the same path as the driver's PYSPARK_PYTHON
# (or an archive shipped with spark-submit, see infra/README.md) and the stage folders at the same path.
set -euo pipefail
if [ $# -ne 1 ] || [[ $1 != spark://* ]]; then
    echo "usage: $0 spark://MASTER_HOST:PORT" >&2
    exit 2
fi
# shellcheck source=infra/spark/secret.sh
source "$(dirname "$0")/secret.sh"
require_private_spark_secret

master_host=${1#spark://}
master_host=${master_host%:*}
host=${SPARK_WORKER_HOST:-}
if [ -z "$host" ] && { [ "$master_host" = 127.0.0.1 ] || [ "$master_host" = localhost ]; }; then
    host=127.0.0.1
fi
if [ "$host" = 127.0.0.1 ]; then
    export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
fi
export_spark_daemon_auth

options=(--work-dir "${SPARK_WORKER_DIR:-/tmp/spark-worker}" --webui-port "${SPARK_WORKER_WEBUI_PORT:-8081}")
[ -n "$host" ] && options+=(--host "$host")
[ -n "${SPARK_WORKER_CORES:-}" ] && options+=(--cores "$SPARK_WORKER_CORES")
[ -n "${SPARK_WORKER_MEMORY:-}" ] && options+=(--memory "$SPARK_WORKER_MEMORY")
exec spark-class org.apache.spark.deploy.worker.Worker "${options[@]}" "$1"
