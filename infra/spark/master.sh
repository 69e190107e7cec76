#!/usr/bin/env bash
# A Spark standalone master, in the foreground (run it under systemd, tmux or a container).
#
#   infra/spark/master.sh                  # spark://127.0.0.1:7077, status page on 127.0.0.1:8080
#
#   SPARK_MASTER_HOST         address to bind and advertise (default 127.0.0.1: this machine only)
#   SPARK_LOCAL_IP            address of the status page (default: 127.0.0.1 when the master is on loopback,
#                             else every interface)
#   SPARK_MASTER_PORT         7077
#   SPARK_MASTER_WEBUI_PORT   8080 (http://HOST:PORT/json/ is the cluster's state as JSON)
#   SPARK_SECRET_FILE         the cluster's shared secret, created when missing (secret.sh)
#
# Only drivers and workers holding the secret can talk to the master (spark.authenticate).
# spark-class comes with the pyspark package (`pip install -r requirements/dataprep.txt`).
set -euo pipefail
# shellcheck source=infra/spark/secret.sh
source "$(dirname "$0")/secret.sh"
create_spark_secret
require_private_spark_secret

host=${SPARK_MASTER_HOST:-127.0.0.1}
if [ "$host" = 127.0.0.1 ]; then
    export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
fi
export_spark_daemon_auth
exec spark-class org.apache.spark.deploy.master.Master \
    --host "$host" \
    --port "${SPARK_MASTER_PORT:-7077}" \
    --webui-port "${SPARK_MASTER_WEBUI_PORT:-8080}"
