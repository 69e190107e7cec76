#!/usr/bin/env bash
# A Spark standalone master, in the foreground (run it under systemd, tmux or a container).
#
#   infra/spark/master.sh                  # spark://$(hostname -f):7077, status page on :8080
#
#   SPARK_MASTER_HOST         address to bind and advertise (default: this machine's name)
#   SPARK_MASTER_PORT         7077
#   SPARK_MASTER_WEBUI_PORT   8080 (http://HOST:PORT/json/ is the cluster's state as JSON)
#
# spark-class comes with the pyspark package (`pip install -r requirements/dataprep.txt`).
set -euo pipefail
exec spark-class org.apache.spark.deploy.master.Master \
    --host "${SPARK_MASTER_HOST:-$(hostname -f)}" \
    --port "${SPARK_MASTER_PORT:-7077}" \
    --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}"
