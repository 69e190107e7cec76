"""GPT trainer: Megatron tensor slicing x DeepSpeed pipeline x ZeRO-1 data parallelism."""

__version__ = "0.1.0"
