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

# pdsh and ssh: the `deepspeed --hostfile` launcher starts the ranks of other nodes through them.
# Debian/Ubuntu security updates replace exact versions, so apt packages are left unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends pdsh openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mtnlg
COPY requirements/trainer.txt requirements/trainer.txt
COPY docker/requirements_for_base.py docker/requirements_for_base.py
# torch and whatever the base image pins in its pip constraints ($PIP_CONSTRAINT) stay as the base image
# has them (its CUDA build of torch, the numpy its compiled packages expect); the rest installs at the
# pins of requirements/trainer.txt. The installed torch is held explicitly for bases without constraints.
RUN python docker/requirements_for_base.py requirements/trainer.txt > /tmp/requirements.txt \
    && python -c 'import torch; print(f"torch=={torch.__version__}")' > /tmp/torch.txt \
    && pip install -c /tmp/torch.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/torch.txt

# The source tree: presets find their DeepSpeed JSON under infra/deepspeed relative to the package.
# The trainer reads shards through blending's reader and manifest; the demo's report (reporting/) reads
# only files through blending's readers (none of them needs Spark).
COPY pyproject.toml ./
COPY trainer/ trainer/
COPY blending/ blending/
COPY reporting/ reporting/
COPY infra/ infra/
COPY docker/train-demo.sh docker/train-demo.sh

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
