# syntax=docker/dockerfile:1
# The curation pipeline: Spark (driver, master and workers all run this image), dataprep and blending.
#
#   docker build -f docker/dataprep.Dockerfile -t mtnlg/dataprep .
#   docker run --rm -v "$PWD/out:/opt/mtnlg/out" mtnlg/dataprep \
#       spark-submit --master 'local[*]' infra/spark/run_module.py dataprep extract --input ... --output ...
#
# Bookworm, not the newer default: Spark 4 runs on Java 17, which Debian 13 no longer ships.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Java for Spark; procps gives Spark's scripts `ps`. Debian's security updates replace exact versions,
# so apt packages are left unpinned (the Python packages are pinned).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mtnlg
COPY requirements/dataprep.txt requirements/dataprep.txt
RUN pip install -r requirements/dataprep.txt

# The source tree, not an installed wheel: configs (infra/) and the bundled sample-crawl material are
# found relative to the packages, and Spark executors import the same files through PYTHONPATH.
# reporting/ is `python -m reporting inspect`, which `dataprep run` suggests at its end.
COPY pyproject.toml ./
COPY dataprep/ dataprep/
COPY blending/ blending/
COPY reporting/ reporting/
# The sample-crawl generator (a tool beside the services): docker/dataprep-demo.sh builds the demo's crawl.
COPY samplecrawl/ samplecrawl/
COPY infra/ infra/
COPY tests/fixtures/samplecrawl/ tests/fixtures/samplecrawl/
COPY docker/dataprep-demo.sh docker/dataprep-demo.sh

# The pyspark wheel carries Spark itself: spark-submit, spark-class and the jars.
ENV PYTHONPATH=/opt/mtnlg \
    PYSPARK_PYTHON=python3 \
    PYSPARK_DRIVER_PYTHON=python3 \
    SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark \
    PATH=/usr/local/lib/python3.11/site-packages/pyspark/bin:$PATH
# Console logging: warnings, and the master's and workers' own news (Spark's default is every INFO line).
COPY docker/log4j2.properties ${SPARK_HOME}/conf/log4j2.properties

# Outputs go to out/ (a volume in docker/compose.yaml), owned by the unprivileged user; secret/ holds the
# Spark cluster's secret (another volume), which only that user may read.
RUN useradd --create-home --uid 1000 mtnlg \
    && mkdir -p out secret \
    && chown mtnlg:mtnlg out secret \
    && chmod 700 secret
USER 1000:1000

# No fixed entrypoint: the same image runs spark-submit, a Spark master or a worker (spark-class).
CMD ["spark-submit", "--help"]
