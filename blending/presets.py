"""Blend presets. MTNLG_TABLE1 is Table 1 of Smith et al. 2022, "Using DeepSpeed and Megatron to Train
Megatron-Turing NLG 530B, A Large-Scale Generative Language Model" (arXiv:2201.11990): the 15 datasets
of the 339B-token training blend, their size in billions of tokens, their sampling weight (%) and the
epochs each one gets over the 270B tokens of training. The weights agree, to the paper's rounding,
with the DATA_BLEND of Megatron-DeepSpeed's MT-NLG example scripts (0.14336 Books3, 0.19336
OpenWebText2, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperSource:
    name: str  # the source name used in configs and document rows
    label: str  # as printed in the paper
    tokens_billion: float
    weight_percent: float
    epochs: float


MTNLG_TABLE1: tuple[PaperSource, ...] = (
    PaperSource("books3", "Books3", 25.7, 14.3, 1.5),
    PaperSource("openwebtext2", "OpenWebText2", 14.8, 19.3, 3.6),
    PaperSource("stack_exchange", "Stack Exchange", 11.6, 5.7, 1.4),
    PaperSource("pubmed_abstracts", "PubMed Abstracts", 4.4, 2.9, 1.8),
    PaperSource("wikipedia", "Wikipedia", 4.2, 4.8, 3.2),
    PaperSource("gutenberg_pg19", "Gutenberg (PG-19)", 2.7, 0.9, 0.9),
    PaperSource("bookcorpus2", "BookCorpus2", 1.5, 1.0, 1.8),
    PaperSource("nih_exporter", "NIH ExPorter", 0.3, 0.2, 1.8),
    PaperSource("pile_cc", "Pile-CC", 49.8, 9.4, 0.5),
    PaperSource("arxiv", "ArXiv", 20.8, 1.4, 0.2),
    PaperSource("github", "GitHub", 24.3, 1.6, 0.2),
    PaperSource("cc_2020_50", "CC-2020-50", 68.7, 13.0, 0.5),
    PaperSource("cc_2021_04", "CC-2021-04", 82.6, 15.7, 0.5),
    PaperSource("realnews", "RealNews", 21.9, 9.0, 1.1),
    PaperSource("cc_stories", "CC-Stories", 5.3, 0.9, 0.5),
)
MTNLG_TRAINING_TOKENS_BILLION = 270.0

PRESETS: dict[str, tuple[PaperSource, ...]] = {"mtnlg": MTNLG_TABLE1}


def preset_weights(preset: str) -> dict[str, float]:
    """Source name -> weight (a fraction) of a named preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown weights preset {preset!r}; known: {', '.join(PRESETS)}")
    return {s.name: s.weight_percent / 100.0 for s in PRESETS[preset]}
