"""The capacity planner against the MT-NLG paper's own figures (arXiv 2201.11990, section 2).

Tolerances: sizes within 0.5% of the paper's rounded figures (16.9 TB, 8.8 GB); pipeline efficiency within
1 percentage point (for PP = 35 the formula gives 80.5% and 89.2%, which the paper quotes as 81% and
90%); seconds per iteration within 1% (the paper's times come from measured runs and its rounded
TFLOP/s, our FLOP count from the layer shapes gives 60.0 / 50.0 / 44.6 s).
"""

import json
import math

import pytest

from trainer import plan
from trainer.config import ConfigError, apply_override
from trainer.presets import get_preset

H, L, S, V_PADDED = 20480, 105, 2048, 51200


@pytest.fixture
def paper():
    return get_preset("mtnlg-530b")


def test_parameters_come_from_the_layer_shapes(paper):
    assert paper.model.padded_vocab_size(8) == V_PADDED  # 50257 up to a multiple of 128 x TP 8
    count = plan.parameter_count(paper.model, 8)
    assert count == L * (12 * H * H + 13 * H) + V_PADDED * H + S * H + 2 * H
    assert 529e9 < count < 531e9  # "530B"


def test_model_states_of_530b_exceed_10_terabytes(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert p.model_state_bytes_total == p.parameters * 20
    assert p.model_state_bytes_total > 10e12


def test_per_gpu_model_states_divide_by_tp_pp_and_shard_optimizer_over_dp(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert (p.tensor, p.pipeline, p.data) == (8, 35, 8)
    # the busiest stage: 105 / 35 = 3 layers plus the word and position embeddings, sliced 8 ways
    stage = (3 * (12 * H * H + 13 * H) + V_PADDED * H + S * H) / 8
    assert p.params_per_gpu == pytest.approx(stage)
    assert p.model_state_bytes_per_gpu == pytest.approx(stage * (2 + 2 + 16 / 8))  # ZeRO-1 over DP 8

    apply_override(paper, "parallel.zero_stage=0")
    unsharded = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert unsharded.model_state_bytes_per_gpu == pytest.approx(stage * 20)


def test_activation_memory_matches_the_paper(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert p.activation_bytes_full_batch == 1920 * L * S * H * 2
    assert p.activation_bytes_full_batch == pytest.approx(16.9e12, rel=0.005)  # the whole batch of 1920
    assert p.activation_bytes_per_sample == pytest.approx(8.8e9, rel=0.005)  # one of 1920 micro-batches


def test_first_stage_activations_with_recomputation(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    # 1F1B keeps PP = 35 micro-batches in flight on the first stage, each with 3 layer inputs
    boundaries = 35 * 3 * S * H * 2
    working = S * H * (10 + 24 / 8)  # one layer recomputed, fused attention
    assert p.activation_bytes_per_gpu == pytest.approx(boundaries + working)
    assert p.fits
    scores = plan.make_plan(paper, plan.Cluster(nodes=280), attention_scores=True)
    assert scores.activation_bytes_per_gpu == pytest.approx(boundaries + S * H * (10 + 3 + 5 * 128 * S / (H * 8)))


@pytest.mark.parametrize("multiple, quoted", [(4, 0.81), (8, 0.90)])
def test_pipeline_bubble_efficiency(multiple, quoted):
    assert plan.pipeline_efficiency(multiple * 35, 35) == pytest.approx(quoted, abs=0.01)


def test_pipeline_efficiency_of_the_run(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert p.micro_batches == 1920 // 8  # micro-batch 1 over DP 8
    assert p.pipeline_efficiency == pytest.approx(240 / (240 + 34))


@pytest.mark.parametrize("nodes, tflops, seconds", [(280, 126, 60.1), (350, 121, 50.2), (420, 113, 44.4)])
def test_seconds_per_iteration_match_the_paper(paper, nodes, tflops, seconds):
    p = plan.make_plan(paper, plan.Cluster(nodes=nodes, gpus_per_node=8, achieved_tflops=tflops))
    assert p.gpus == nodes * 8
    assert p.seconds_per_iteration == pytest.approx(seconds, rel=0.01)


def test_narayanan_flops(paper):
    flops = plan.make_plan(paper, plan.Cluster(nodes=280)).flops_per_iteration
    assert flops == pytest.approx(96 * 1920 * S * L * H**2 * (1 + S / (6 * H) + V_PADDED / (16 * L * H)))

    apply_override(paper, "parallel.activation_checkpoint_interval=0")
    no_recompute = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert not no_recompute.recompute
    assert no_recompute.flops_per_iteration == pytest.approx(flops * 72 / 96)
    # without recomputation all 3 layers of each of the 35 micro-batches in flight keep everything
    assert no_recompute.activation_bytes_per_gpu == pytest.approx(35 * 3 * S * H * (10 + 24 / 8))
    assert not plan.make_plan(paper, plan.Cluster(nodes=280), attention_scores=True).fits


def test_training_time_follows_tokens_per_second(paper):
    p = plan.make_plan(paper, plan.Cluster(nodes=280))
    assert p.tokens_per_second == pytest.approx(1920 * S / p.seconds_per_iteration)
    assert p.train_days == pytest.approx(270e9 / p.tokens_per_second / 86400)


def test_layouts_that_cannot_run_are_refused(paper):
    with pytest.raises(ConfigError, match="multiple of TP 8 x PP 35"):
        plan.make_plan(paper, plan.Cluster(nodes=281))
    apply_override(paper, "batch.global_batch_size=1924")
    with pytest.raises(ConfigError, match="global batch 1924"):
        plan.make_plan(paper, plan.Cluster(nodes=280))


def test_cli_prints_the_paper_plan(capsys):
    assert plan.main(["--preset", "mtnlg-530b"]) == 0
    text = capsys.readouterr().out
    assert "TP 8 x PP 35 x DP 8 = 2240 GPUs on 280 nodes" in text
    assert "529.6B" in text and "10.6 TB" in text and "16.9 TB" in text and "8.8 GB" in text

    assert plan.main(["--preset", "mtnlg-530b", "--nodes", "420", "--tflops", "113", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["data"] == 12 and figures["fits"] is True
    assert math.isclose(figures["seconds_per_iteration"], 44.4, rel_tol=0.01)


def test_cli_other_presets_and_errors(capsys):
    assert plan.main(["--preset", "tiny-cpu", "--set", "parallel.pipeline=4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["tensor"], figures["pipeline"], figures["data"]) == (2, 4, 1)  # one 8-GPU node

    assert plan.main(["--preset", "mtnlg-530b", "--nodes", "100"]) == 2
    assert "not a multiple of TP 8 x PP 35" in capsys.readouterr().err
