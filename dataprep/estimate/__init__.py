"""The cost of a run before it runs: `python -m dataprep estimate` (command.py) runs the pipeline on a
sample of the input and projects the whole input's CPU-hours, output and memory (model.py); meter.py
measures the process tree, measure.py a pipeline run (also `run --measure-cost`)."""
