"""The stage framework: what every curation stage shares (docs/stages.md says how to write one).

  stage.py           the three stage shapes, RunContext, options, Extras; no Spark
  tally.py           named counters a stage keeps per unit of work; no Spark
  inputs.py          input files: paths, globs, URIs, Common Crawl listings; no Spark
  finished_files.py  per-file resume of source stages; no Spark
  spark_rows.py      each shape's rows as a DataFrame, tallies through an accumulator
  spark_folders.py   stage folders read into Spark and written from it
  runner.py          one stage run: reuse, shipping files, rows, write
"""
