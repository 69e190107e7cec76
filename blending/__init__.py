"""Documents -> tokenized Megatron indexed shards per source + the blend manifest the trainer reads.

blending owns every format the curation service and the trainer exchange: stage folders
(stage_folder.py, stage_stats.py), shards and the manifest (indexed.py, manifest.py, docindex.py), the
evaluation tasks (evaltasks/) and file hashing (hashing.py). Those modules import neither pyspark nor
torch, and nothing in blending imports dataprep or trainer. The trainer imports `blending.reader`
(manifest + megatron-core datasets). `python -m blending --help` lists the commands.
"""

__version__ = "0.1.0"
