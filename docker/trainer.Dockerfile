# syntax=docker/dockerfile:1
# The trainer: DeepSpeed + megatron-core on NVIDIA's PyTorch image (CUDA, NCCL, cuDNN, a torch built for
# them). The same image trains on CPU with DS_ACCELERATOR=cpu (gloo), as docker/compose.yaml does.
#
#   docker build -f docker/trainer.Dockerfile -t mtnlg/trainer .
#   docker run --rm --gpus all --ipc=host -v "$PWD/out:/opt/mtnlg/out" mtnlg/trainer \
#       deepspeed --module trainer.train --preset 1b --manifest out/shards/manifest.json --out out/runs/1b
ARG BASE_IMAGE=nvcr.io/nvidia/pytorch:25.12-py3
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/mtnlg
COPY requirements/trainer.txt requirements/trainer.txt
# Everything but torch, and the base image's torch held where it is: requirements/trainer.txt pins the
# CPU build for development machines, while this image keeps the CUDA build it was made with.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN grep -v -E '^torch([=<> ]|$)' requirements/trainer.txt > /tmp/requirements.txt \
    && python -c 'import torch; print(f"torch=={torch.__version__}")' > /tmp/constraints.txt \
    && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/constraints.txt

# The source tree: presets find their DeepSpeed JSON under infra/deepspeed relative to the package.
# The trainer reads shards through blending's reader and manifest (neither needs Spark).
COPY pyproject.toml ./
COPY trainer/ trainer/
COPY blending/ blending/
COPY infra/ infra/

ENV PYTHONPATH=/opt/mtnlg \
    TORCH_EXTENSIONS_DIR=/opt/mtnlg/.cache/torch_extensions \
    OMP_NUM_THREADS=1

# Unprivileged uid 1000, the owner of the shared out/ volume in both images (Ubuntu-based images
# already have a user with that id).
RUN (id -u 1000 >/dev/null 2>&1 || useradd --create-home --uid 1000 mtnlg) \
    && mkdir -p out .cache/torch_extensions \
    && chown -R 1000:1000 out .cache
USER 1000:1000

CMD ["python", "-m", "trainer.train", "--help"]
