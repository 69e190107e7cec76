"""The paper's token-based schedules, the typed config and the throughput formula (no processes launched)."""

import json
import math
from pathlib import Path

import pytest

from trainer import schedules
from trainer.config import (
    BatchConfig,
    ConfigError,
    OptimizerConfig,
    apply_override,
    from_dict,
    load_overrides_file,
    merge_deepspeed_json,
    to_dict,
    validate,
)
from trainer.data import micro_batch_sample_ids
from trainer.metrics import narayanan_flops_per_iteration, peak_tflops
from trainer.presets import PRESETS, get_preset

PAPER = OptimizerConfig()  # lr 5e-5, warmup 1B tokens, cosine to 10% by 340B tokens


def test_lr_warmup_is_linear_in_tokens():
    assert schedules.learning_rate(0, PAPER) == 0.0
    assert schedules.learning_rate(250_000_000, PAPER) == pytest.approx(5e-5 * 0.25, rel=1e-12)
    assert schedules.learning_rate(999_999_999, PAPER) == pytest.approx(5e-5 * 0.999999999, rel=1e-12)
    assert schedules.learning_rate(1_000_000_000, PAPER) == pytest.approx(5e-5, rel=1e-12)


def test_lr_cosine_decay_to_ten_percent():
    peak, floor = 5e-5, 5e-6
    for tokens in (1e9, 50e9, 170.5e9, 300e9, 339.999e9):
        progress = (tokens - 1e9) / (340e9 - 1e9)
        expected = floor + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - floor)
        assert schedules.learning_rate(int(tokens), PAPER) == pytest.approx(expected, rel=1e-12)
    midpoint = int(1e9 + (340e9 - 1e9) / 2)
    assert schedules.learning_rate(midpoint, PAPER) == pytest.approx((peak + floor) / 2, rel=1e-9)
    assert schedules.learning_rate(340_000_000_000, PAPER) == pytest.approx(floor)
    assert schedules.learning_rate(270_000_000_000 * 10, PAPER) == pytest.approx(floor)


def test_paper_batch_rampup_32_to_1920_over_12b_tokens():
    batch = BatchConfig()
    per_increment = 12e9 / ((1920 - 32) / 32)  # 59 increments share the 12B tokens
    assert schedules.global_batch_size(0, batch) == 32
    assert schedules.global_batch_size(int(per_increment) - 1, batch) == 32
    assert schedules.global_batch_size(math.ceil(per_increment), batch) == 64
    assert schedules.global_batch_size(int(10.5 * per_increment), batch) == 32 + 10 * 32
    assert schedules.global_batch_size(11_999_999_999, batch) == 1888
    assert schedules.global_batch_size(12_000_000_000, batch) == 1920
    assert schedules.global_batch_size(270_000_000_000, batch) == 1920
    sizes = [schedules.global_batch_size(t, batch) for t in range(0, 13_000_000_000, 50_000_000)]
    assert sizes == sorted(sizes) and set(sizes) == set(range(32, 1921, 32))


def test_micro_batch_count_follows_the_ramp():
    batch = BatchConfig(micro_batch_size=2, global_batch_size=128, rampup_start=32, rampup_increment=32,
                        rampup_tokens=3000)
    for tokens, gbs in ((0, 32), (999, 32), (1000, 64), (1999, 64), (2000, 96), (3000, 128), (10**6, 128)):
        assert schedules.global_batch_size(tokens, batch) == gbs
        for dp in (1, 2, 4):
            micro = schedules.micro_batches_per_step(tokens, batch, dp)
            assert micro == gbs // (2 * dp)
            dealt = [i for rank in range(dp) for ids in micro_batch_sample_ids(7, gbs, 2, dp, rank) for i in ids]
            assert len(micro_batch_sample_ids(7, gbs, 2, dp, 0)) == micro
            assert sorted(dealt) == list(range(7, 7 + gbs))


def test_plan_step_uses_batch_before_and_lr_after():
    cfg = get_preset("tiny-cpu")
    seq = cfg.model.seq_length
    start, full, micro = cfg.batch.rampup_start, cfg.batch.global_batch_size, cfg.batch.micro_batch_size
    assert start < full  # the preset ramps its batch, as the paper does
    step = schedules.plan_step(0, 0, cfg, data_parallel_size=2)
    assert step.global_batch == start and step.micro_batches == start // (micro * 2)
    assert step.tokens_after == start * seq
    assert step.lr == pytest.approx(cfg.optimizer.lr * start * seq / cfg.optimizer.warmup_tokens)
    # Walk the run: the ramp reaches the full batch exactly when its token budget is consumed.
    consumed, sizes = 0, []
    while not sizes or sizes[-1] < full:
        step = schedules.plan_step(len(sizes), consumed, cfg, 2)
        assert step.global_batch == schedules.global_batch_size(consumed * seq, cfg.batch)
        sizes.append(step.global_batch)
        consumed += step.global_batch
    first_full = sizes.index(full)
    assert sum(sizes[:first_full]) * seq >= cfg.batch.rampup_tokens > sum(sizes[: first_full - 1]) * seq


def test_total_samples_covers_train_tokens():
    cfg = get_preset("tiny-cpu")
    total = schedules.total_samples(cfg)
    assert total * cfg.model.seq_length >= cfg.train_tokens
    assert (total - cfg.batch.global_batch_size) * cfg.model.seq_length < cfg.train_tokens


def test_presets_validate_on_their_topologies():
    validate(get_preset("tiny-cpu"), world_size=8)
    validate(get_preset("1b"), world_size=1)
    big = get_preset("mtnlg-530b")
    validate(big, world_size=2240)  # 280 DGX A100 nodes: TP 8 x PP 35 x DP 8
    assert (big.model.num_layers, big.model.hidden_size, big.model.num_attention_heads) == (105, 20480, 128)
    assert (big.model.seq_length, big.parallel.tensor, big.parallel.pipeline) == (2048, 8, 35)
    assert big.batch.global_batch_size == 1920 and big.precision == "bf16"
    assert (big.optimizer.beta1, big.optimizer.beta2, big.optimizer.eps) == (0.9, 0.95, 1e-8)
    assert (big.optimizer.weight_decay, big.optimizer.clip_grad) == (0.1, 1.0)
    assert set(PRESETS) == {"tiny-cpu", "1b", "mtnlg-530b"}


def test_validate_refuses_impossible_topologies():
    cfg = get_preset("tiny-cpu")
    with pytest.raises(ConfigError, match="not a multiple of TP 2 x PP 2"):
        validate(cfg, world_size=6)
    cfg.batch.rampup_increment = 12
    with pytest.raises(ConfigError, match="rampup_increment=12 must be a positive multiple of"):
        validate(cfg, world_size=8)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("gpt-5")


def test_overrides_are_typed_and_round_trip(tmp_path):
    cfg = get_preset("tiny-cpu")
    apply_override(cfg, "optimizer.lr=1e-3")
    apply_override(cfg, "train_tokens=2e6")
    apply_override(cfg, "model.init_std=none")
    apply_override(cfg, "parallel.activation_checkpoint_interval=2")
    assert cfg.optimizer.lr == 1e-3 and cfg.train_tokens == 2_000_000 and isinstance(cfg.train_tokens, int)
    assert cfg.model.init_std is None and cfg.parallel.activation_checkpoint_interval == 2
    with pytest.raises(ConfigError, match="--set optimizer.momentum: no such config key"):
        apply_override(cfg, "optimizer.momentum=0.9")
    with pytest.raises(ConfigError, match="cannot read"):
        apply_override(cfg, "batch.micro_batch_size=four")
    overrides = tmp_path / "run.yaml"
    overrides.write_text("batch:\n  micro_batch_size: 8\nseed: 7\n")
    load_overrides_file(cfg, overrides)
    assert cfg.batch.micro_batch_size == 8 and cfg.seed == 7
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_deepspeed_json_adds_settings_and_refuses_conflicts(tmp_path):
    owned = {"train_batch_size": 32, "gradient_clipping": 1.0, "zero_optimization": {"stage": 1}}
    assert merge_deepspeed_json(owned, None) == owned
    extra = tmp_path / "ds.json"
    extra.write_text(json.dumps({"zero_optimization": {"reduce_bucket_size": 1000}, "gradient_clipping": 1.0}))
    merged = merge_deepspeed_json(owned, str(extra))
    assert merged["zero_optimization"] == {"reduce_bucket_size": 1000, "stage": 1}
    assert merged["gradient_clipping"] == 1.0 and merged["train_batch_size"] == 32
    extra.write_text(json.dumps({"gradient_clipping": 0.5}))
    with pytest.raises(ConfigError, match="gradient_clipping=0.5 conflicts"):
        merge_deepspeed_json(owned, str(extra))
    extra.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="zero_optimization.stage=3 conflicts"):
        merge_deepspeed_json(owned, str(extra))


def test_shipped_deepspeed_jsons_agree_with_the_engines_config():
    from trainer.engine import deepspeed_config
    from trainer.parallel.topology import layout_for_world

    root = Path(__file__).resolve().parents[1] / "infra" / "deepspeed"
    for name, world in (("tiny-cpu", 8), ("1b", 1), ("mtnlg-530b", 2240)):
        cfg = get_preset(name)
        cfg.precision = "bf16" if name != "tiny-cpu" else "fp32"
        assert cfg.run.deepspeed_json == str(root / f"{name}.json")
        layout = layout_for_world(cfg.parallel.tensor, cfg.parallel.pipeline, world)
        owned = deepspeed_config(cfg, layout, cfg.batch.rampup_start)
        merged = merge_deepspeed_json(owned, cfg.run.deepspeed_json)
        assert merged["train_micro_batch_size_per_gpu"] == cfg.batch.micro_batch_size
        assert merged["gradient_clipping"] == 1.0


def test_narayanan_formula_reproduces_the_papers_throughput():
    # 530B, batch 1920, seq 2048, full recomputation: 280 / 350 / 420 DGX A100 nodes (8 GPUs each) at
    # 60.1 / 50.2 / 44.4 s per iteration are 126 / 121 / 113 TFLOP/s per GPU in the paper.
    flops = narayanan_flops_per_iteration(1920, 2048, 105, 20480, 51200, recompute=True)
    for nodes, seconds, tflops in ((280, 60.1, 126), (350, 50.2, 121), (420, 44.4, 113)):
        assert flops / (seconds * nodes * 8) / 1e12 == pytest.approx(tflops, rel=0.01)
    assert narayanan_flops_per_iteration(8, 2048, 24, 2048, 50304, recompute=False) == pytest.approx(
        72 * 8 * 2048 * 24 * 2048**2 * (1 + 2048 / (6 * 2048) + 50304 / (16 * 24 * 2048))
    )
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert peak_tflops("cpu", "fp32") is None


def test_target_val_loss_is_a_number_the_unigram_loss_or_a_percentage_below_it():
    from trainer.train import target_loss

    assert target_loss("unigram", 7.0) == 7.0
    assert target_loss("unigram-15%", 7.0) == pytest.approx(5.95)
    assert target_loss(" unigram - 0% ", 7.0) == 7.0 and target_loss("4.5", 7.0) == 4.5
    for bad in ("unigram-15", "unigram-100%", "unigram+5%", "low"):
        with pytest.raises(ConfigError, match="unigram-P%"):
            target_loss(bad, 7.0)


def test_a_run_that_reached_its_target_is_finished_for_that_target_only(tmp_path):
    from trainer.checkpoint import TrainerState
    from trainer.train import finished_run

    cfg = get_preset("tiny-cpu")
    saved = TrainerState(step=140, consumed_samples=4480, consumed_tokens=573440, config={}, manifest_sha256="0" * 64,
                         data_parallel=2, scheduler=None)
    assert finished_run(tmp_path, saved, cfg, "unigram-15%") is None  # no summary.json: never finished
    summary = {"status": "target", "steps": 140, "tokens": 573440, "val_loss": 5.96, "unigram_val_loss": 7.0556}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert "5.9600 below the target 5.9973" in finished_run(tmp_path, saved, cfg, "unigram-15%")
    assert finished_run(tmp_path, saved, cfg, "unigram-20%") is None  # a stricter target: train on
    assert finished_run(tmp_path, saved, cfg, None) is None
    later = TrainerState(**{**saved.__dict__, "step": 160})
    assert finished_run(tmp_path, later, cfg, "unigram-15%") is None  # the summary is of an older step
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": "signal"}))
    assert finished_run(tmp_path, saved, cfg, "unigram-15%") is None  # stopped by a signal: resume


def test_validate_refuses_a_model_shape_the_layout_cannot_hold():
    cfg = get_preset("tiny-cpu")
    cfg.model.num_attention_heads = 1
    with pytest.raises(ConfigError, match=f"heads not divisible by TP {cfg.parallel.tensor}"):
        validate(cfg, world_size=8)
    cfg = get_preset("tiny-cpu")
    cfg.model.num_layers = cfg.parallel.pipeline - 1
    with pytest.raises(ConfigError, match="cannot fill"):
        validate(cfg, world_size=8)
