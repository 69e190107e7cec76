"""One Spark session per process, for both Spark jobs (curation stages and the shard builder): local[*] by
default, any cluster through --master or spark-submit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

# Names a standalone cluster's shared secret (infra/spark/secret.sh): drivers of spark:// and
# local-cluster masters authenticate with it.
SECRET_FILE_ENV = "SPARK_SECRET_FILE"

DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.pythonUDF.arrow.enabled": "true",
    "spark.ui.showConsoleProgress": "true",
    "spark.sql.adaptive.enabled": "false",  # a fixed plan: partition counts we choose, not ones AQE picks
}


def get_spark(master: str | None = None, app_name: str = "dataprep", conf: dict | None = None) -> SparkSession:
    """The process's Spark session, created on first use.

    Under spark-submit the master comes from the command line; otherwise from `master`, then
    $SPARK_MASTER, then local[*]. Workers run the same interpreter as the driver. With $SPARK_SECRET_FILE
    set, a driver of a cluster authenticates with that secret (spark.authenticate).

    A session that is already active is returned as it is (its app name stays), unless the call asks
    for something it does not have: another `master`, or a `conf` value it does not hold. Spark cannot
    change those in a running session, so that is a RuntimeError rather than a session that silently
    differs from the one asked for.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        context = active.sparkContext
        wrong = []
        if master is not None and master != context.master:
            wrong.append(f"master {master!r} (the active session's: {context.master!r})")
        for key, value in (conf or {}).items():
            wanted = str(value).lower() if isinstance(value, bool) else str(value)
            have = active.conf.get(key, None)
            if have is None:
                have = context.getConf().get(key)
            if have != wanted:
                wrong.append(f"{key}={wanted!r} (the active session's: {have!r})")
        if wrong:
            raise RuntimeError(
                "a Spark session is already active and cannot be changed to " + ", ".join(wrong)
                + ": stop it first (spark.stop()), or ask for what it has"
            )
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {"spark.app.name": app_name, **_launch_settings(master), **DEFAULT_CONF, **(conf or {})}
    if os.environ.get(SECRET_FILE_ENV):
        _start_context_with_cluster_secret(settings, cluster_secret(os.environ[SECRET_FILE_ENV]))
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def _launch_settings(master: str | None) -> dict:
    """Master and driver JVM settings, unless spark-submit launched us with its own."""
    if not master and "PYSPARK_GATEWAY_PORT" in os.environ:
        return {}
    # Local runs bind to loopback: no hostname lookup warnings, nothing listening outside.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    resolved = master or os.environ.get("SPARK_MASTER", "local[*]")
    settings = {"spark.master": resolved, "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY", "4g")}
    if resolved.startswith("local"):
        # A local JVM runs short jobs whose work is in Python: its C2 compiler threads cost more
        # CPU than they save (2-4 s of a 10 s extract job on 2 cores; bench/extract_throughput.py),
        # and so do G1's concurrent threads against one serial collector of its short-lived rows
        # (a tenth of the JVM's CPU in a quality stage run; bench/quality_throughput.py).
        settings["spark.driver.extraJavaOptions"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    return settings


def cluster_secret(path: str) -> str:
    """The secret in the file `path`, as infra/spark/secret.sh hands it to the daemons."""
    try:
        secret_file = Path(path)
        mode = secret_file.stat().st_mode
        secret = secret_file.read_text().strip()
    except OSError as error:
        raise ValueError(f"{path} ({SECRET_FILE_ENV}): {error.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"{path} ({SECRET_FILE_ENV}) is readable by others (mode {mode & 0o777:o}): chmod 600 it")
    if not secret:
        raise ValueError(f"{path} ({SECRET_FILE_ENV}) is empty")
    return secret


def _start_context_with_cluster_secret(settings: dict, secret: str) -> None:
    """Start the driver's JVM without the secret, then hand it over py4j: a --conf on the JVM's command
    line would show it to every user of the machine (ps). Local masters make their own secret."""
    SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(settings.items()))
    jvm_conf = SparkConf().setAll(settings.items())  # now in the JVM, with spark-submit's settings
    master = jvm_conf.get("spark.master", "local")
    if master == "local" or master.startswith("local["):
        return
    jvm_conf.set("spark.authenticate", "true").set("spark.authenticate.secret", secret)
    SparkContext.getOrCreate(jvm_conf)
