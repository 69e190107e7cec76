"""The GPT layers in one process: layout-independent initialisation, vocabulary padding, loss, causality."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from trainer.config import ModelConfig
from trainer.parallel.topology import Layout, RankPlace, placement_problems
from trainer.synthetic import BigramStream, replica_micro_batches

VOCAB = 300


@pytest.fixture(scope="module")
def one_rank():
    """A one-process gloo job, as DeepSpeed and megatron-core see it (tensor parallelism of one)."""
    import deepspeed
    from deepspeed.comm import comm as ds_comm

    from trainer.parallel.groups import destroy_megatron_groups, init_distributed, init_megatron_groups

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as env:
        for name, value in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
            env.setenv(name, value)
        init_distributed("gloo")
        init_megatron_groups(Layout())
        yield deepspeed
        destroy_megatron_groups()
        dist.destroy_process_group()
        ds_comm.cdb = None  # DeepSpeed's handle on the destroyed group; a later job must start afresh


def small_model(**overrides) -> ModelConfig:
    values = dict(num_layers=2, hidden_size=48, num_attention_heads=4, seq_length=16, vocab_size=VOCAB)
    values.update(overrides)
    return ModelConfig(**values)


def test_vocabulary_is_padded_to_a_multiple_of_128_times_tp():
    assert ModelConfig(vocab_size=50257).padded_vocab_size(8) == 51200
    assert ModelConfig(vocab_size=VOCAB).padded_vocab_size(1) == 384
    assert ModelConfig(vocab_size=VOCAB).padded_vocab_size(2) == 512
    assert ModelConfig(vocab_size=256).padded_vocab_size(2) == 256


@pytest.mark.parametrize("partition_dim", [0, 1])
def test_tensor_parallel_shards_are_slices_of_the_one_process_weight(partition_dim):
    from trainer.model.init import init_normal_

    def param(shape):
        p = torch.nn.Parameter(torch.empty(shape))
        p.tensor_model_parallel, p.partition_dim, p.partition_stride = True, partition_dim, 1
        return p

    full_shape = (12, 6)
    full = param(full_shape)
    init_normal_(full, seed=7, name="layers.3.fc1.weight", std=0.02, tp_rank=0)
    for tp in (2, 3):
        shard_shape = list(full_shape)
        shard_shape[partition_dim] //= tp
        shards = []
        for rank in range(tp):
            shard = param(tuple(shard_shape))
            init_normal_(shard, seed=7, name="layers.3.fc1.weight", std=0.02, tp_rank=rank)
            shards.append(shard.detach())
        assert torch.equal(torch.cat(shards, dim=partition_dim), full.detach())
    other = param(full_shape)
    init_normal_(other, seed=8, name="layers.3.fc1.weight", std=0.02, tp_rank=0)
    assert not torch.equal(other.detach(), full.detach())


def test_init_std_scaled_output_projections_and_zero_padding(one_rank):
    from trainer.model.gpt import TransformerBlock, WordEmbedding, model_shape

    cfg = small_model(hidden_size=192, num_attention_heads=4, num_layers=6)
    shape = model_shape(cfg, 1, seed=3)
    std = math.sqrt(1 / (3 * 192))
    block = TransformerBlock(shape, layer_number=0)
    assert block.qkv.weight.std().item() == pytest.approx(std, rel=0.05)
    assert block.fc1.weight.std().item() == pytest.approx(std, rel=0.05)
    assert block.fc2.weight.std().item() == pytest.approx(std / math.sqrt(2 * 6), rel=0.05)
    assert block.attention_out.weight.std().item() == pytest.approx(std / math.sqrt(2 * 6), rel=0.05)
    assert torch.count_nonzero(block.qkv.bias) == 0
    assert all(getattr(p, "tensor_model_parallel", False) for p in (block.qkv.weight, block.fc2.weight))
    assert not torch.equal(block.qkv.weight, TransformerBlock(shape, layer_number=1).qkv.weight)

    embedding = WordEmbedding(shape).embedding.weight.detach()
    assert embedding.shape == (384, 192)
    assert torch.count_nonzero(embedding[VOCAB:]) == 0
    assert embedding[:VOCAB].std().item() == pytest.approx(std, rel=0.05)


def test_loss_masks_the_padded_vocabulary_out(one_rank):
    from trainer.model.gpt import GPTLoss, model_shape

    loss_fn = GPTLoss(model_shape(small_model(), 1, seed=0))
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 384)
    logits[..., VOCAB:] = 50.0  # padded rows would dominate the softmax if they took part
    logits.requires_grad_(True)
    labels = torch.randint(VOCAB, (2, 5))
    loss = loss_fn(logits, labels)
    expected = F.cross_entropy(logits.detach()[..., :VOCAB].reshape(-1, VOCAB), labels.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    loss.backward()
    assert torch.count_nonzero(logits.grad[..., VOCAB:]) == 0

    mask = torch.zeros(2, 5)
    mask[0, :3] = 1.0
    masked = loss_fn(logits.detach(), (labels, mask))
    expected = F.cross_entropy(logits.detach()[0, :3, :VOCAB], labels[0, :3])
    assert masked.item() == pytest.approx(expected.item(), abs=1e-6)


def test_attention_is_causal(one_rank):
    from trainer.model.gpt import SequentialGPT, model_shape

    model = SequentialGPT(model_shape(small_model(), 1, seed=5)).eval()
    tokens = torch.randint(VOCAB, (1, 12), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[0, 7] = (changed[0, 7] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (1, 12, 384)
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_layout_parsing_and_placement_check():
    assert Layout.parse("2x4x8") == Layout(tensor=2, pipeline=4, data=8)
    assert Layout.parse("2x4x8").world_size == 64
    with pytest.raises(ValueError, match="TPxPPxDP"):
        Layout.parse("2x4")
    good = [RankPlace(rank=r, node=r // 4, pp=r // 4, dp=(r // 2) % 2, tp=r % 2) for r in range(8)]
    assert placement_problems(good) == []
    bad = [RankPlace(rank=r, node=r % 2, pp=r // 4, dp=(r // 2) % 2, tp=r % 2) for r in range(8)]
    assert len(placement_problems(bad)) == 4


def test_token_stream_is_deterministic_and_replicas_split_the_batch():
    stream = BigramStream(VOCAB, 16, seed=1)
    assert torch.equal(stream.sample(5), BigramStream(VOCAB, 16, seed=1).sample(5))
    assert not torch.equal(stream.sample(5), stream.sample(6))
    one = [x for x, _ in replica_micro_batches(stream, step_first_sample=8, global_batch=8, micro_batch_size=2,
                                                 data_parallel_rank=0, data_parallel_size=1)]
    two = [x for r in range(2) for x, _ in replica_micro_batches(stream, step_first_sample=8, global_batch=8,
                                                                  micro_batch_size=2, data_parallel_rank=r,
                                                                  data_parallel_size=2)]
    assert len(one) == 4 and all(torch.equal(a, b) for a, b in zip(one, two))
    inputs, labels = next(stream.micro_batches(0, 1, 2))
    assert inputs.shape == labels.shape == (2, 16) and inputs.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], labels[:, :-1])


def test_dropout_masks_are_reproduced_when_activations_are_recomputed(one_rank):
    import deepspeed
    from deepspeed.runtime.activation_checkpointing.checkpointing import get_cuda_rng_tracker
    from megatron.core import parallel_state

    from trainer.model.gpt import TransformerBlock, model_shape

    deepspeed.checkpointing.configure(parallel_state)
    deepspeed.checkpointing.model_parallel_cuda_manual_seed(11)
    block = TransformerBlock(model_shape(small_model(dropout=0.3), 1, seed=2), layer_number=0).train()
    x = torch.randn(2, 8, 48)
    cpu_state, tracker_states = torch.get_rng_state(), get_cuda_rng_tracker().get_states()

    def forward_backward(recompute: bool):
        torch.set_rng_state(cpu_state)
        get_cuda_rng_tracker().set_states(dict(tracker_states))  # the tracker keeps and updates the dict
        block.zero_grad()
        inputs = x.clone().requires_grad_(True)
        out = deepspeed.checkpointing.checkpoint(block, inputs) if recompute else block(inputs)
        out.square().sum().backward()
        return out.detach(), inputs.grad, block.fc1.weight.grad.clone()

    stored, recomputed = forward_backward(False), forward_backward(True)
    for a, b in zip(stored, recomputed):
        assert torch.equal(a, b)
    block.eval()
    with torch.no_grad():
        assert not torch.allclose(block(x), stored[0])  # dropout was active in training


def test_model_shape_is_checked_by_the_config():
    from trainer.config import ConfigError, check_model_shape
    from trainer.model.gpt import model_shape

    with pytest.raises(ConfigError, match="hidden_size 50 not divisible by 4 heads"):
        model_shape(small_model(hidden_size=50), 1, seed=0)
    with pytest.raises(ConfigError, match="4 heads not divisible by TP 3"):
        model_shape(small_model(), 3, seed=0)
    with pytest.raises(ConfigError, match="2 layers cannot fill 4 pipeline stages"):
        model_shape(small_model(), 1, seed=0, pipeline_parallel=4)
    check_model_shape(small_model(), tensor=2, pipeline=2)


def test_checkpoint_table_follows_the_model_parameters(one_rank):
    from trainer.checkpoint.layout import tensor_table
    from trainer.model.gpt import SequentialGPT, model_shape

    model = small_model(num_layers=3)
    table = tensor_table(model)
    module = SequentialGPT(model_shape(model, 1, seed=0))
    params = dict(module.named_parameters())
    assert len(table.tensors) == len(params)
    for entry in table.tensors.values():
        param = params[f"layers.{entry.layer}.{entry.key}"]
        sliced = getattr(param, "tensor_model_parallel", False)
        assert entry.dim == (param.partition_dim if sliced else None), entry.name
        assert entry.padded_shape(model, 1) == tuple(param.shape), entry.name
    assert table.tensors["layers.2.fc2.weight"].dim == 1 and table.tensors["layers.2.ln_mlp.bias"].dim is None
    word = table.tensors["embedding.word.weight"]
    assert (word.layer, word.key, word.ds_name) == (0, "embedding.weight", "tied_modules.embed.embedding.weight")
    assert word.shape == (VOCAB, 48) and word.shard_shape(model, 2) == (256, 48)
    assert table.of_ds_name("5.weight").name == "final_norm.weight"
    assert table.at(4, "qkv._extra_state") is None and "qkv._extra_state" in table.layer_keys[4]
