"""Kill and resume: a SIGKILLed training continues from its newest complete checkpoint, never a partial one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from llmops.platform import Platform
from llmops.training import checkpoint
from llmops.training.reference import ReferenceConfig, train_reference
from tests.training.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]

#: The child trains normally up to step 10, then slows down (a sleep per step in the progress callback), so the
#: test can kill it while it is still training, with checkpoints written every 5 steps.
CHILD = """
import sys, time
from pathlib import Path
from llmops.platform import Platform
from llmops.settings import Settings
from llmops.training.reference import load_config, train_reference

platform = Platform(Settings(home=Path(sys.argv[1])))
train_reference(platform, load_config(Path(sys.argv[2])), Path(sys.argv[3]),
                progress=lambda done, total: time.sleep(0.3 if done >= 10 else 0))
"""


def _write_config(path: Path, corpus_file: Path) -> ReferenceConfig:
    data = tiny_config([str(corpus_file)], steps=40, register_as=None)
    path.write_text(yaml.safe_dump(data))
    return ReferenceConfig.model_validate(data)


def test_sigkill_then_resume_continues_from_the_checkpoint(
    embedded_platform: Platform, tmp_path: Path, corpus_file: Path
) -> None:
    config = _write_config(tmp_path / "tiny.yaml", corpus_file)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "child-home"), str(tmp_path / "tiny.yaml"), str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            found = checkpoint.latest(out / "checkpoints")
            if found is not None and found.step >= 10:
                break
            if child.poll() is not None:
                pytest.fail(f"training exited before a checkpoint: {child.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint at step 10 within 120 s")
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    killed_at = checkpoint.latest(out / "checkpoints")
    assert killed_at is not None and 10 <= killed_at.step < config.steps

    # Debris a kill (or a careless copy) can leave: neither may be picked.
    partial = out / "checkpoints" / "step-99999999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    mismatched = out / "checkpoints" / "step-99999998"
    mismatched.mkdir()
    for name in checkpoint.FILES:
        (mismatched / name).write_text(json.dumps({"step": 1}))
    half_deleted = out / "checkpoints" / "step-00000001"  # a kill in the middle of removing an old checkpoint
    half_deleted.mkdir()
    (half_deleted / "model.safetensors").write_bytes(b"rest")
    tmp = out / "checkpoints" / f".tmp-step-{killed_at.step + 5:08d}-1"
    tmp.mkdir()
    for name in checkpoint.FILES:
        (tmp / name).write_text("{}")
    assert checkpoint.latest(out / "checkpoints").step == killed_at.step  # type: ignore[union-attr]

    resumed = train_reference(embedded_platform, config, out, resume=True)
    assert (resumed.start_step, resumed.steps) == (killed_at.step, config.steps)
    run = embedded_platform.tracking.get_run(resumed.run_id)
    assert run.params["start_step"] == str(killed_at.step)
    assert run.tags["resumed_from_run"] == killed_at.state["run_id"]
    loss_steps = [p.step for p in embedded_platform.tracking.metric_series(run.id, "train/loss").points]
    assert loss_steps[0] == killed_at.step + config.log_every and loss_steps[-1] == config.steps
    assert resumed.tokens_seen == config.steps * config.batch_size * config.model.context_length
    assert not tmp.exists() and not half_deleted.exists()  # the next save cleared the debris of the kill
    assert partial.exists()  # newer than every complete checkpoint: not ours to delete, and never picked

    # The resumed run ends exactly where an uninterrupted one does: same batches, same optimizer state.
    straight = train_reference(embedded_platform, config, tmp_path / "straight")
    assert straight.start_step == 0
    a = load_file(str(out / "checkpoints" / f"step-{config.steps:08d}" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "checkpoints" / f"step-{config.steps:08d}" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    assert resumed.metrics["validation_loss"] == pytest.approx(straight.metrics["validation_loss"], rel=1e-4)
