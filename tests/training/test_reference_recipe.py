"""The reference recipe end to end at toy size: tracked metrics, checkpoints, a registered model with lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmops.errors import Conflict, InvalidInput
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.training import checkpoint
from llmops.training.reference import ReferenceConfig, load_config, train_reference
from tests.training.conftest import make_corpus, tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_tiny_run_logs_metrics_and_registers_with_lineage(
    embedded_platform: Platform, admin: Actor, tmp_path: Path
) -> None:
    en = embedded_platform.datasets.import_path(admin, make_corpus(tmp_path / "en.jsonl"), name="tiny-en", kind="text")
    zh = embedded_platform.datasets.import_path(
        admin, make_corpus(tmp_path / "zh.jsonl", seed=1), name="tiny-zh", kind="text"
    )
    config = ReferenceConfig.model_validate(tiny_config(["tiny-en", "tiny-zh"]))
    seen: list[int] = []
    result = train_reference(
        embedded_platform, config, tmp_path / "out", actor=admin, progress=lambda d, t: seen.append(d)
    )
    assert seen == list(range(1, 21))
    run = embedded_platform.tracking.get_run(result.run_id)
    assert run.status == "finished" and run.kind == "train"
    metrics = {m.key: m for m in run.metrics}
    for key in ("train/loss", "train/lr", "train/tokens_per_second", "val/loss", "val/perplexity"):
        assert key in metrics, key
    assert metrics["train/loss"].count == 10  # every log_every=2 steps
    assert [p.step for p in embedded_platform.tracking.metric_series(run.id, "val/perplexity").points] == [10, 20]
    assert metrics["train/tokens"].last == 20 * 4 * 32
    assert run.params["model.hidden_size"] == "32"
    inputs = {e.entity_ref for e in run.lineage if e.direction == "input"}
    assert inputs == {en.ref, zh.ref}

    assert result.model_ref == "tiny-lm:1"
    version = embedded_platform.registry.get_version("tiny-lm:1")
    assert version.run_id == run.id and version.architecture == "LlamaForCausalLM"
    lineage = embedded_platform.registry.lineage("tiny-lm:1")
    assert lineage.run_id == run.id and sorted(lineage.datasets) == sorted([en.ref, zh.ref])
    outputs = {e.entity_ref for e in embedded_platform.tracking.get_run(run.id).lineage if e.direction == "output"}
    assert outputs == {"tiny-lm:1"}

    model_dir = result.model_dir
    written = json.loads((model_dir / "metrics.json").read_text())
    assert written["validation_perplexity"] == pytest.approx(metrics["val/perplexity"].last)
    assert written["datasets"] == [en.ref, zh.ref]
    held_out = tmp_path / "out" / "data" / "validation.jsonl"
    assert (model_dir / "validation.jsonl").read_bytes() == held_out.read_bytes()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert model.config.vocab_size == len(tok) and model.config.max_position_embeddings == 32
    assert checkpoint.latest(tmp_path / "out" / "checkpoints").step == 20  # type: ignore[union-attr]


def test_existing_checkpoint_needs_resume(embedded_platform: Platform, tmp_path: Path, corpus_file: Path) -> None:
    config = ReferenceConfig.model_validate(tiny_config([str(corpus_file)], steps=5, register_as=None))
    result = train_reference(embedded_platform, config, tmp_path / "out")
    assert result.model_ref is None
    with pytest.raises(Conflict, match="--resume"):
        train_reference(embedded_platform, config, tmp_path / "out")
    changed = config.model_copy(update={"seed": 1, "steps": 6})
    with pytest.raises(Conflict, match="seed"):
        train_reference(embedded_platform, changed, tmp_path / "out", resume=True)
    # only the step count changed: the run continues where the checkpoint stopped
    more = train_reference(embedded_platform, config.model_copy(update={"steps": 6}), tmp_path / "out", resume=True)
    assert (more.start_step, more.steps) == (5, 6)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hiden_size: 64\nsteps: 0\n")
    with pytest.raises(InvalidInput) as info:
        load_config(bad)
    assert "model.hiden_size" in info.value.message and "steps" in info.value.message


def test_example_config_is_valid() -> None:
    """The YAML that trained assets/reference-lm validates against the recipe's config."""
    path = REPO / "examples" / "reference-lm.yaml"
    config = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert config == ReferenceConfig.model_validate(raw)
    assert set(raw) <= set(ReferenceConfig.model_fields)
    assert config.register_as == "reference-lm"


def test_missing_source_is_a_clear_error(embedded_platform: Platform, tmp_path: Path) -> None:
    config = ReferenceConfig.model_validate(tiny_config([str(tmp_path / "nope.jsonl")]))
    with pytest.raises(InvalidInput, match="nope.jsonl"):
        train_reference(embedded_platform, config, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()
