"""Export a checkpoint (any TP x PP layout) as a Hugging Face `transformers` GPT-2 model.

    python -m trainer.export_hf --checkpoint RUN[/checkpoints/step_N] --out hf-model
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> model = AutoModelForCausalLM.from_pretrained("hf-model")      # offline, GPT2LMHeadModel
    >>> tokenizer = AutoTokenizer.from_pretrained("hf-model")

Our GPT is GPT-2's architecture (pre-LayerNorm blocks, learned positions, tied input/output embedding,
biases everywhere, a final LayerNorm), so the export is `GPT2LMHeadModel` with exact GELU
(`activation_function: "gelu"`, GPT-2 itself uses the tanh approximation). Weights are rearranged, not
recomputed: GPT-2's Conv1D stores [in, out] (ours [out, in]), and its fused QKV orders outputs
(q | k | v) x heads where ours holds whole heads (head x (q, k, v)). The vocabulary padding is dropped.
Writes config.json, model.safetensors, generation_config.json, the tokenizer (tokenizer.json with its
special tokens) and export.json (which checkpoint, step and layout it came from) into a temporary folder
renamed to OUT when complete; an earlier export in OUT is replaced, any other non-empty OUT refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from blending.atomic import folder_written_atomically
from blending.user_errors import reports_bad_input
from trainer.checkpoint import TOKENIZER_FILE, CheckpointError, resolve_checkpoint
from trainer.inference import quiet_imports

if TYPE_CHECKING:
    from trainer.checkpoint.full import FullState

EXPORT_RECORD = "export.json"


def _heads_first_to_qkv_first(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows [head, (q, k, v), head_dim] -> [(q, k, v), head, head_dim] (the first dim of `tensor`)."""
    rest = tensor.shape[1:]
    return tensor.reshape(heads, 3, -1, *rest).transpose(0, 1).reshape(-1, *rest)


def gpt2_state_dict(full: FullState) -> dict[str, torch.Tensor]:
    cfg = full.config.model
    p = full.params
    out = {"transformer.wte.weight": p["embedding.word.weight"], "transformer.wpe.weight": p["embedding.position.weight"],
           "transformer.ln_f.weight": p["final_norm.weight"], "transformer.ln_f.bias": p["final_norm.bias"]}
    for n in range(cfg.num_layers):
        ours, theirs = f"layers.{n}.", f"transformer.h.{n}."
        out[theirs + "ln_1.weight"] = p[ours + "ln_attention.weight"]
        out[theirs + "ln_1.bias"] = p[ours + "ln_attention.bias"]
        out[theirs + "attn.c_attn.weight"] = _heads_first_to_qkv_first(p[ours + "qkv.weight"], cfg.num_attention_heads).t()
        out[theirs + "attn.c_attn.bias"] = _heads_first_to_qkv_first(p[ours + "qkv.bias"], cfg.num_attention_heads)
        out[theirs + "attn.c_proj.weight"] = p[ours + "attention_out.weight"].t()
        out[theirs + "attn.c_proj.bias"] = p[ours + "attention_out.bias"]
        out[theirs + "ln_2.weight"] = p[ours + "ln_mlp.weight"]
        out[theirs + "ln_2.bias"] = p[ours + "ln_mlp.bias"]
        out[theirs + "mlp.c_fc.weight"] = p[ours + "fc1.weight"].t()
        out[theirs + "mlp.c_fc.bias"] = p[ours + "fc1.bias"]
        out[theirs + "mlp.c_proj.weight"] = p[ours + "fc2.weight"].t()
        out[theirs + "mlp.c_proj.bias"] = p[ours + "fc2.bias"]
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return {k: v.contiguous().float() for k, v in out.items()}


def gpt2_config(full: FullState):
    from transformers import GPT2Config

    m = full.config.model
    eod = (full.trainer_state.tokenizer or {}).get("eod_id")
    return GPT2Config(vocab_size=m.vocab_size, n_positions=m.seq_length, n_embd=m.hidden_size, n_layer=m.num_layers,
                      n_head=m.num_attention_heads, n_inner=4 * m.hidden_size, activation_function="gelu",
                      resid_pdrop=m.dropout, embd_pdrop=m.dropout, attn_pdrop=m.dropout,
                      layer_norm_epsilon=m.layernorm_epsilon, initializer_range=m.resolved_init_std,
                      bos_token_id=eod, eos_token_id=eod, tie_word_embeddings=True)


def export(checkpoint: str | Path, out: str | Path) -> Path:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    quiet_imports()
    from trainer.checkpoint.full import read_model

    source = resolve_checkpoint(checkpoint)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (out / EXPORT_RECORD).is_file():
        raise CheckpointError(f"--out {out} exists and is not an earlier export (no {EXPORT_RECORD}): "
                              "it is not replaced; choose another folder")
    tokenizer_file = source / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise CheckpointError(f"{tokenizer_file} is missing: the export needs the run's tokenizer")
    full = read_model(source)
    config = gpt2_config(full)
    model = GPT2LMHeadModel(config)
    missing, unexpected = model.load_state_dict(gpt2_state_dict(full), strict=False)
    missing = [k for k in missing if not k.endswith("attn.bias") and not k.endswith("masked_bias")]
    if missing or unexpected:
        raise CheckpointError(f"GPT-2 weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.eval()
    eod = config.eos_token_id
    special = {}
    if eod is not None:
        from tokenizers import Tokenizer

        eod_token = Tokenizer.from_file(str(tokenizer_file)).id_to_token(eod)
        special = {"eos_token": eod_token, "bos_token": eod_token, "unk_token": eod_token}
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), model_max_length=config.n_positions,
                                        **special)
    with folder_written_atomically(out) as tmp:  # an earlier export stays until this one is complete
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / EXPORT_RECORD).write_text(json.dumps({
            "checkpoint": str(source), "step": full.trainer_state.step, "tokens": full.trainer_state.consumed_tokens,
            "layout": f"TP{full.trainer_state.config['parallel']['tensor']}xPP{full.trainer_state.config['parallel']['pipeline']}",
        }, indent=1))
    return out


@reports_bad_input("python -m trainer.export_hf")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.export_hf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run folder (its newest)")
    parser.add_argument("--out", required=True, help="folder for the Hugging Face model")
    args = parser.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}: GPT2LMHeadModel (config.json, model.safetensors) and its tokenizer; load it with "
          f"transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
