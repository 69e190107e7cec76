#!/usr/bin/env bash
# Submit a data job to a Spark cluster with the project's settings.
#
#   SPARK_MASTER=spark://MASTER_HOST:7077 infra/spark/submit.sh dataprep/jobs/extract.py --input ... --output ...
#   SPARK_MASTER=... infra/spark/submit.sh infra/spark/run_module.py blending build --config ... --out ...
#
#   SPARK_MASTER        the cluster (required): spark://HOST:PORT, yarn, k8s://..., or local[*]
#   SPARK_PROPERTIES    properties file (default infra/spark/spark-defaults.conf, sized for 64-core nodes)
#   SPARK_ENV_ARCHIVE   a packed Python environment (venv-pack, see infra/README.md) unpacked next to every
#                       executor; without it executors run $PYSPARK_PYTHON, which must exist on every worker
#   SPARK_SUBMIT_ARGS   more spark-submit options ("--conf key=value ...")
#   SPARK_SECRET_FILE   a standalone cluster's secret (default ~/.config/mtnlg/spark.secret, see secret.sh):
#                       the driver authenticates with it (blending/spark_session.py reads the file)
#
# Run it from the repository root; stage folders must be at the same path on the driver and every worker.
set -euo pipefail
if [ $# -lt 1 ] || [ -z "${SPARK_MASTER:-}" ]; then
    echo "usage: SPARK_MASTER=spark://HOST:PORT $0 JOB.py [job options]" >&2
    exit 2
fi
if [[ $SPARK_MASTER == spark://* ]]; then
    # shellcheck source=infra/spark/secret.sh
    source "$(dirname "$0")/secret.sh"
    require_private_spark_secret
fi
options=(--master "$SPARK_MASTER" --properties-file "${SPARK_PROPERTIES:-infra/spark/spark-defaults.conf}")
if [ -n "${SPARK_ENV_ARCHIVE:-}" ]; then
    options+=(--archives "$SPARK_ENV_ARCHIVE#env")
    export PYSPARK_PYTHON=./env/bin/python
fi
read -r -a extra <<< "${SPARK_SUBMIT_ARGS:-}"
exec spark-submit "${options[@]}" "${extra[@]}" "$@"
