"""Documents -> tokenized Megatron indexed shards per source + the blend manifest the trainer reads.

The trainer imports `blending.reader` (manifest + megatron-core datasets); nothing it imports pulls in
pyspark or dataprep. `python -m blending --help` lists the commands.
"""

__version__ = "0.1.0"
