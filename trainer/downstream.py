"""Downstream-task scores of a run's checkpoints while it trains (`trainer.train --eval-tasks`).

Rank 0 starts `python -m trainer.evaluate` on each checkpoint it is asked to score, in a process of its
own (a one-process model and process group, none of the launcher's variables), and training goes on:
no rank waits on the evaluation, so no collective can time out on it. The next evaluation first waits
for the previous one; the run waits for the last one before it ends and prints each table.
RUN/eval/step_N.json is the result, RUN/eval/step_N.log the evaluator's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                      "MASTER_PORT", "CROSS_RANK", "NODE_RANK")


class DownstreamEvals:
    def __init__(self, tasks: str, shots: str = "0", limit: int | None = None, active: bool = True, log=print):
        self.tasks, self.shots, self.limit = tasks, shots, limit
        self.active = active
        self.log = log
        self._pending: list[tuple[subprocess.Popen, Path, Path]] = []

    def start(self, checkpoint_dir: Path, out: Path) -> None:
        if not self.active:
            return
        self.wait()
        out.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and not k.startswith("TORCHELASTIC")}
        command = [sys.executable, "-m", "trainer.evaluate", "--checkpoint", str(checkpoint_dir), "--tasks", self.tasks,
                   "--shots", self.shots, "--out", str(out)]
        if self.limit:
            command += ["--limit", str(self.limit)]
        log_file = out.with_suffix(".log")
        with log_file.open("w") as sink:
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        self._pending.append((process, out, log_file))
        self.log(f"scoring {checkpoint_dir.name} on {self.tasks} in the background (pid {process.pid}): {log_file}")

    def wait(self) -> None:
        """Wait for the evaluations started so far; print each one's table, or why it failed."""
        for process, out, log_file in self._pending:
            code = process.wait()
            text = log_file.read_text(errors="replace")
            if code == 0:
                table = text[text.rfind("accuracy in %") :].split("\n", 1)[-1] if "accuracy in %" in text else text
                self.log(f"downstream tasks, {out.stem} ({out}):\n{table.strip()}")
            else:
                self.log(f"downstream evaluation of {out.stem} failed (exit {code}); see {log_file}:\n{text[-2000:]}")
        self._pending = []
