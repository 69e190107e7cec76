"""GPT model with Megatron tensor slicing, built as DeepSpeed pipeline layers."""
