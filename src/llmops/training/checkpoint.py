"""Training checkpoints that describe themselves and are never seen half-written.

A checkpoint is a directory ``step-NNNNNNNN`` holding:

- ``model.safetensors``: the weights (``safetensors.torch.save_model`` handles tied embeddings);
- ``optimizer.pt``: the AdamW state, read back with ``torch.load(weights_only=True)`` (tensors and plain
  containers only; nothing here unpickles arbitrary objects);
- ``rng.safetensors``: the torch CPU generator state;
- ``state.json``: step, data position, scheduler state, the recipe config and the run id, written last.

It is written into ``.tmp-step-…`` next to its final place, every file fsynced, then renamed: a rename is atomic,
so a kill leaves either a complete checkpoint or a ``.tmp-`` directory that ``latest`` ignores (and the next
save removes). Old checkpoints are renamed away before they are deleted, for the same reason. ``latest`` also
checks that a ``step-`` directory holds every file and that its ``state.json`` names the same step, so a
directory copied or truncated by hand is skipped rather than trusted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

FILES = ("model.safetensors", "optimizer.pt", "rng.safetensors", "state.json")
STEP_DIR = re.compile(r"^step-(\d{8})$")


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(
    directory: Path,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``step`` atomically; keep the newest ``keep`` complete checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    tmp = directory / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    save_file({"torch_cpu": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2, sort_keys=True), encoding="utf-8")
    for name in FILES:
        _fsync(tmp / name)
    if final.exists():  # the same step saved again (e.g. a resumed run that stops where it resumed)
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync(directory)
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    """Drop all but the newest ``keep`` complete checkpoints, and debris of interrupted saves and deletions.

    A checkpoint is renamed to ``.old-…`` before it is deleted, so a kill during the deletion leaves a name that
    ``latest`` never considers, which the next save removes; incomplete ``step-`` directories older than the
    newest complete checkpoint (a kill of an older version of this code mid-deletion) go the same way.
    """
    complete = _complete(directory)
    doomed = [c.path for c in complete[:-keep]] if keep > 0 else []
    if complete:
        kept = {c.path for c in complete}
        for path in directory.iterdir():
            match = STEP_DIR.match(path.name)
            if match and path not in kept and int(match.group(1)) < complete[-1].step:
                doomed.append(path)
    for path in doomed:
        trash = directory / f".old-{path.name}-{os.getpid()}"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    for leftover in [*directory.glob(".tmp-step-*"), *directory.glob(".old-step-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _complete(directory: Path) -> list[Checkpoint]:
    found: list[Checkpoint] = []
    if not directory.is_dir():
        return found
    for path in directory.iterdir():
        match = STEP_DIR.match(path.name)
        if not match or not path.is_dir() or not all((path / f).is_file() for f in FILES):
            continue
        try:
            state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(state, dict) and state.get("step") == int(match.group(1)):
            found.append(Checkpoint(path, int(match.group(1)), state))
    return sorted(found, key=lambda c: c.step)


def latest(directory: Path) -> Checkpoint | None:
    """The newest complete checkpoint under ``directory``, or None."""
    complete = _complete(directory)
    return complete[-1] if complete else None


def restore(checkpoint: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load weights, optimizer state and the RNG state of ``checkpoint`` in place."""
    missing, unexpected = load_model(model, str(checkpoint.path / "model.safetensors"), strict=True)
    if missing or unexpected:  # pragma: no cover - strict=True raises first
        raise ValueError(f"checkpoint {checkpoint.path} does not fit the model: {missing=} {unexpected=}")
    optimizer.load_state_dict(torch.load(checkpoint.path / "optimizer.pt", weights_only=True))
    torch.set_rng_state(load_file(str(checkpoint.path / "rng.safetensors"))["torch_cpu"])
