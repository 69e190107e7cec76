"""What a trained checkpoint is for: resharding to other layouts, Hugging Face export, downstream evaluation,
and the checks that guard a run folder.

One TP2 x PP2 x DP2 run (8 gloo processes, dropout 0) on real shards trains 15 steps, saving at step 5,
10 and 15 and scoring PIQA at the end (trainer.train --eval-tasks). Its step-5 checkpoint is resharded to
TP1xPP1xDP1, TP2xPP1xDP2 and TP1xPP2xDP2 and each continues 10 steps: their losses must be those of the
original run's steps 6..15 (continuing on the original layout; the run tests show that a resume repeats a
run bit for bit). The final checkpoint is exported to transformers and evaluated.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT, build_prose_shards, launch_env
from trainer.checkpoint import CheckpointError, complete_checkpoints, read_state
from trainer.metrics import read_csv

OVERRIDES = {
    "model.num_layers": 4, "model.hidden_size": 32, "model.num_attention_heads": 4, "model.seq_length": 64,
    "model.dropout": 0.0, "batch.micro_batch_size": 4, "batch.global_batch_size": 16, "batch.rampup_start": 16,
    "batch.rampup_increment": 8, "optimizer.lr": 3e-3, "optimizer.warmup_tokens": 2048,
    "optimizer.decay_tokens": 15 * 16 * 64, "train_tokens": 15 * 16 * 64, "run.log_interval": 1,
    "run.eval_interval": 0, "run.save_interval": 5, "run.keep_checkpoints": 3,
}
LAYOUTS = {"TP1xPP1xDP1": (1, 1, 1), "TP2xPP1xDP2": (2, 1, 2), "TP1xPP2xDP2": (1, 2, 2)}


def train_command(manifest: Path, out: Path, processes: int, *extra: str, overrides: dict | None = None) -> list[str]:
    sets = [arg for key, value in {**OVERRIDES, **(overrides or {})}.items() for arg in ("--set", f"{key}={value}")]
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    return [*launcher, "-m", "trainer.train", "--manifest", str(manifest), "--out", str(out), *sets, *extra]


def run_to_end(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, env=launch_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture(scope="module", autouse=True)
def _one_process_group_released():
    """Models loaded in this process join a one-process group; later modules start from none."""
    yield
    from trainer.parallel.groups import release_process_groups

    release_process_groups()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("ckpt-tools")
    manifest = build_prose_shards(base / "shards")
    run = base / "run"
    log = run_to_end(train_command(manifest, run, 8, "--eval-tasks", "piqa", "--eval-limit", "12"))
    return {"manifest": manifest, "run": run, "log": log, "base": base}


@pytest.fixture(scope="module")
def resharded(trained):
    """Each layout resumed from the resharded step-5 checkpoint for 10 steps: its metrics rows."""
    step5 = trained["run"] / "checkpoints" / "step_00000005"
    rows = {}
    for name, (tp, pp, dp) in LAYOUTS.items():
        out = trained["base"] / f"reshard-{name}"
        done = subprocess.run([sys.executable, "-m", "trainer.reshard", "--checkpoint", str(step5), "--tp", str(tp),
                               "--pp", str(pp), "--out", str(out)], cwd=ROOT, env=launch_env(), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        run_to_end(train_command(trained["manifest"], out, tp * pp * dp, "--resume",
                                 overrides={"parallel.tensor": tp, "parallel.pipeline": pp}))
        rows[name] = read_csv(out / "metrics.csv")
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_resharded_checkpoint_continues_with_the_original_losses(trained, resharded, layout):
    original = read_csv(trained["run"] / "metrics.csv")
    assert [int(r["step"]) for r in original] == list(range(1, 16))
    reference = [float(r["loss"]) for r in original[5:]]
    rows = resharded[layout]
    assert [int(r["step"]) for r in rows] == list(range(6, 16))  # the data position and step count carried over
    losses = [float(r["loss"]) for r in rows]
    print(f"{layout}: first-step loss difference {abs(losses[0] - reference[0]):.2e}, largest relative difference "
          f"over 10 steps {max(abs(a - b) / abs(b) for a, b in zip(losses, reference)):.2e}")
    assert losses[0] == pytest.approx(reference[0], abs=1e-5)
    assert losses == pytest.approx(reference, rel=1e-4)
    # same schedules: lr and batch per step
    assert [r["lr"] for r in rows] == [r["lr"] for r in original[5:]]
    assert [r["samples"] for r in rows] == [r["samples"] for r in original[5:]]


@pytest.mark.slow
def test_checkpoints_carry_the_tokenizer_and_the_run_scores_downstream_tasks(trained):
    final = trained["run"] / "checkpoints" / "step_00000015"
    shipped = trained["manifest"].parent / "tokenizer.json"
    assert (final / "tokenizer.json").read_bytes() == shipped.read_bytes()
    state = read_state(final)
    assert state.tokenizer["file"] == "tokenizer.json" and state.tokenizer["vocab_size"] == 512
    result = json.loads((trained["run"] / "eval" / "step_00000015.json").read_text())
    piqa = result["tasks"]["piqa"]["by_shots"]["0"]
    assert result["step"] == 15 and piqa["items"] + piqa["skipped_too_long"] == 12
    assert "downstream tasks, step_00000015" in trained["log"] and "piqa" in trained["log"] and "0-shot" in trained["log"]
    assert (trained["run"] / "eval" / "step_00000015.log").is_file()
    assert not (trained["run"] / "run.lock").exists()  # released at the end


@pytest.mark.slow
def test_run_report_shows_the_downstream_table(trained, tmp_path):
    from reporting.report import main as report

    assert report([str(trained["run"])], str(tmp_path / "report")) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    result = json.loads((trained["run"] / "eval" / "step_00000015.json").read_text())
    piqa = result["tasks"]["piqa"]
    acc = piqa["by_shots"]["0"]["acc"]
    assert "## Downstream tasks: eval/step_00000015.json" in md
    # the paper's layout: task, metric, items, chance (PIQA has two choices), then the accuracy in %
    assert f"| piqa | acc | {piqa['items']} | 50.0 | {100 * acc:.1f} |" in md
    assert f"piqa acc {100 * acc:.1f}%" in md  # and in the run at a glance


@pytest.mark.slow
def test_export_gives_our_logits_and_generates(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.export_hf import export
    from trainer.inference import load_model

    checkpoint = trained["run"] / "checkpoints" / "step_00000015"
    parallel = read_state(checkpoint).config["parallel"]
    assert (parallel["tensor"], parallel["pipeline"]) == (2, 2)
    out = export(checkpoint, tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert type(model).__name__ == "GPT2LMHeadModel" and (out / "model.safetensors").is_file()
    ours = load_model(checkpoint)
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 4
    ids = torch.tensor([tokenizer.encode(text)[:64], tokenizer.encode(text[::-1])[:64]])
    assert ids.shape[1] == 64
    with torch.no_grad():
        theirs = model(ids).logits
    difference = float((theirs - ours.logits(ids)).abs().max())
    print(f"export: max logit difference {difference:.3g} over {ids.numel()} positions")
    assert difference < 1e-4
    generated = model.generate(ids[:1, :8], max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert generated.shape == (1, 20)
    # greedy generation is our model's argmax, token by token
    assert torch.equal(ours.logits(generated[:, :-1])[0, 7:].argmax(-1), generated[0, 8:])
    # an export replaces an earlier export whole, and never a folder that is not one
    (out / "stale.txt").write_text("from an earlier export")
    assert export(checkpoint, out) == out and not (out / "stale.txt").exists()
    with pytest.raises(CheckpointError, match="is not an earlier export"):
        export(checkpoint, tmp_path)


@pytest.mark.slow
def test_evaluator_log_likelihoods_match_a_plain_transformers_forward(trained, tmp_path):
    from transformers import AutoModelForCausalLM

    from blending.evaltasks import load_task
    from trainer.evaluate import evaluate_task
    from trainer.export_hf import export
    from trainer.inference import load_model

    checkpoint = trained["run"] / "checkpoints" / "step_00000015"
    hf = AutoModelForCausalLM.from_pretrained(export(checkpoint, tmp_path / "hf"), local_files_only=True).eval()
    ours = load_model(checkpoint)
    for task in ("lambada", "piqa"):
        items = load_task(task)
        metrics, records = evaluate_task(ours, task, items, shots=1, limit=8, batch_size=3)
        assert metrics["items"] == len(records) > 0
        by_index = {item.index: item for item in items}
        worst = 0.0
        for record in records:
            item = by_index[record["index"]]
            for choice, ll in zip(item.choices, record["loglikelihoods"]):
                worst = max(worst, abs(ll - _reference_loglikelihood(hf, ours.tokenizer, item, choice, items)))
        print(f"{task}: max per-item log-likelihood difference {worst:.3g}")
        assert worst < 1e-4
    # the clean subset: items the decontamination stage found are left out of clean_acc
    found = {("piqa", r["split"], r["index"]) for r in records[:3]}
    metrics, records = evaluate_task(ours, "piqa", load_task("piqa"), shots=0, limit=8, contaminated=found)
    clean = [r for r in records if ("piqa", r["split"], r["index"]) not in found]
    assert metrics["clean_items"] == len(clean) == len(records) - 3
    assert metrics["clean_acc"] == pytest.approx(sum(r["correct"] for r in clean) / len(clean))
    # every metric has its clean counterpart (HellaSwag is reported by acc_norm)
    assert metrics["clean_acc_norm"] == pytest.approx(sum(r["correct_norm"] for r in clean) / len(clean))


def test_contaminated_items_are_read_from_jsonl_or_json(tmp_path):
    from trainer.evaluate import read_contaminated

    rows = [{"task": "piqa", "split": "validation", "index": 3}, {"task": "lambada", "split": "test", "index": 0}]
    (tmp_path / "found.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "found.json").write_text(json.dumps({"items": rows}))
    expected = {("piqa", "validation", 3), ("lambada", "test", 0)}
    assert read_contaminated(tmp_path / "found.jsonl") == read_contaminated(tmp_path / "found.json") == expected
    (tmp_path / "one.jsonl").write_text(json.dumps(rows[0]) + "\n")  # one line is also a JSON document
    assert read_contaminated(tmp_path / "one.jsonl") == {("piqa", "validation", 3)}
    (tmp_path / "none.jsonl").write_text("")  # the stage found nothing
    assert read_contaminated(tmp_path / "none.jsonl") == set()


def _reference_loglikelihood(hf, tokenizer, item, choice: str, items) -> float:
    """The same request scored one at a time by transformers: 1-shot prompt, left truncation to 64 tokens."""
    from trainer.evaluate import draw_shots, eval_split, prompt, shot_pool

    context = prompt(item, draw_shots(shot_pool(items, eval_split(items)), item, 1, 1234))
    stripped = context.rstrip()
    continuation = context[len(stripped):] + choice
    whole = tokenizer.encode(stripped + continuation).ids
    n_context = len(tokenizer.encode(stripped).ids)
    target = whole[n_context:]
    window = whole[-65:]
    with torch.no_grad():
        log_probs = torch.log_softmax(hf(torch.tensor([window[:-1]])).logits[0].double(), dim=-1)
    positions = range(len(window) - 1 - len(target), len(window) - 1)
    return float(sum(log_probs[p, t] for p, t in zip(positions, target)))


def test_k_shot_prompts_never_contain_the_evaluated_item():
    from blending.evaltasks import load_task
    from trainer.evaluate import draw_shots, eval_split, prompt, shot_pool

    for task in ("piqa", "race", "wic"):  # one split only; train/validation/test; validation and test
        items = load_task(task)
        split = eval_split(items)
        pool = shot_pool(items, split)
        evaluated = [i for i in items if i.split == split][:40]
        for item in evaluated:
            shots = draw_shots(pool, item, 5, seed=7)
            assert len(shots) == min(5, len(pool) - (item in pool))
            assert all((s.split, s.index) != (item.split, item.index) for s in shots)
            assert prompt(item, shots).count(item.context) == 1 and prompt(item, shots).endswith(item.context)
            assert draw_shots(pool, item, 5, seed=7) == shots  # deterministic
        if task == "race":
            assert {s.split for s in pool} == {"train"}
        if task == "wic":
            assert split == "test" and {s.split for s in pool} == {"validation"}


@pytest.mark.slow
def test_missing_or_mismatched_shard_is_refused(trained, tmp_path, capsys):
    from trainer import export_hf, reshard
    from trainer.checkpoint.full import read_model

    source = trained["run"] / "checkpoints" / "step_00000015"
    broken = tmp_path / "run" / "checkpoints" / "step_00000015"
    shutil.copytree(source, broken)
    missing = broken / "layer_03-model_01-model_states.pt"
    missing.unlink()
    with pytest.raises(CheckpointError, match=f"{missing}.*missing"):
        read_model(broken)
    assert reshard.main(["--checkpoint", str(broken), "--tp", "1", "--pp", "1", "--out", str(tmp_path / "x")]) == 2
    assert str(missing) in capsys.readouterr().err
    # a shard of another layer in its place
    shutil.copy(broken / "layer_06-model_01-model_states.pt", missing)
    with pytest.raises(CheckpointError, match="mismatched shard"):
        read_model(broken)
    # the same layer of a TP1 checkpoint: whole tensors where a TP2 slice belongs
    one = reshard.reshard(source, 1, 2, tmp_path / "tp1")
    shutil.copy(one / "layer_03-model_00-model_states.pt", missing)
    with pytest.raises(CheckpointError, match=r"qkv.weight has shape \(96, 32\).* has \(48, 32\): a mismatched shard"):
        read_model(broken)
    # a shard from another checkpoint (step 10): the copies of replicated tensors disagree
    shutil.copy(trained["run"] / "checkpoints" / "step_00000010" / missing.name, missing)
    with pytest.raises(CheckpointError, match="not from the same checkpoint"):
        read_model(broken)
    assert export_hf.main(["--checkpoint", str(broken), "--out", str(tmp_path / "hf")]) == 2
    assert "not from the same checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_on_another_layout_names_the_reshard_command(trained, capsys, monkeypatch):
    from trainer.train import main

    monkeypatch.setenv("WORLD_SIZE", "4")
    sets = [arg for key, value in {**OVERRIDES, "parallel.tensor": 1}.items() for arg in ("--set", f"{key}={value}")]
    code = main(["--manifest", str(trained["manifest"]), "--out", str(trained["run"]), "--resume", *sets])
    err = capsys.readouterr().err
    assert code == 2 and "python -m trainer.reshard --checkpoint" in err and "--tp 1 --pp 2" in err


# --- a second run on a live folder is refused; ranks die with their launcher ----------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_second_run_is_refused_and_no_rank_outlives_a_sigkilled_launcher(trained, tmp_path, capsys, monkeypatch):
    from trainer.runlock import pid_alive
    from trainer.train import main

    out = tmp_path / "live"
    long_run = {"parallel.tensor": 1, "train_tokens": 10_000 * 16 * 64, "optimizer.decay_tokens": 10_000 * 16 * 64,
                "run.save_interval": 0}
    log = (tmp_path / "live.log").open("w")
    ranks: list[int] = []
    launcher = subprocess.Popen(train_command(trained["manifest"], out, 4, overrides=long_run), cwd=ROOT,
                                env=launch_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) >= 2):
            assert launcher.poll() is None and time.monotonic() < deadline, (tmp_path / "live.log").read_text()[-3000:]
            time.sleep(0.2)
        ranks = _children(launcher.pid)
        assert len(ranks) == 4
        holder = json.loads((out / "run.lock").read_text())
        assert holder["pid"] in ranks
        # a second run on the live folder
        monkeypatch.setenv("WORLD_SIZE", "4")
        sets = [arg for key, value in {**OVERRIDES, **long_run}.items() for arg in ("--set", f"{key}={value}")]
        assert main(["--manifest", str(trained["manifest"]), "--out", str(out), "--resume", *sets]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder['pid']} on host {socket.gethostname()}" in err and "live run" in err
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30
        while any(pid_alive(pid, None) and not _zombie(pid) for pid in ranks) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = [pid for pid in ranks if pid_alive(pid, None) and not _zombie(pid)]
        assert not survivors, f"ranks {survivors} outlived their launcher"
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
        for pid in ranks:
            if pid_alive(pid, None):
                os.kill(pid, signal.SIGKILL)
        log.close()
    assert not complete_checkpoints(out / "checkpoints")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
