"""Decontamination: remove downstream-task text (13-grams of the evaluation tasks) from training documents.

tokens.py (words and their hashes), index.py (the task n-gram index file), cuts.py (the paper's cut,
split and drop rules on one text), matcher.py (one document against the index), stage.py (Spark).
"""
