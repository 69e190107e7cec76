"""The quality stage: a fastText word-2-gram classifier scores each document, GPT-3's Pareto rule keeps
or drops it (docs/contracts.md, "The Pareto draw")."""
