"""One Spark session per process, for both Spark jobs (curation stages and the shard builder): local[*] by
default, any cluster through --master or spark-submit."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

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
    $SPARK_MASTER, then local[*]. Workers run the same interpreter as the driver.

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
    builder = SparkSession.builder.appName(app_name)
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master or not launched_by_spark_submit:
        # Local runs bind to loopback: no hostname lookup warnings, nothing listening outside.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        resolved = master or os.environ.get("SPARK_MASTER", "local[*]")
        builder = builder.master(resolved)
        builder = builder.config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
        if resolved.startswith("local"):
            # A local JVM runs short jobs whose work is in Python: its C2 compiler threads cost more
            # CPU than they save (2-4 s of a 10 s extract job on 2 cores; bench/extract_throughput.py).
            builder = builder.config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark
