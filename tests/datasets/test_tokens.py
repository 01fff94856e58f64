"""Token statistics on a tokenizer loaded from a registered model (a tiny real Llama built by the registry's
factory, imported into the registry): counts agree with the tokenizer itself, Chinese costs more tokens per
character than English on this byte-level BPE, and rows over a context limit are counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app
from llmops.errors import InvalidInput
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.settings import Settings
from tests.datasets.conftest import write_jsonl
from tests.registry import factory

ROWS = [
    {"text": "A model registry keeps every version of a model and each fine-tune of it."},
    {"text": "The quick brown fox jumps over the lazy dog near the river bank today."},
    {"text": "模型注册表保存模型的每一个版本以及每一次微调。"},
    {"text": "微调只会轻微地改变权重，所以差异很小。"},
]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = factory.make_tokenizer(tmp_path_factory.mktemp("tok"))
    return factory.make_causal_lm(tmp_path_factory.mktemp("lm"), "llama", tokenizer_dir=tokenizer)


def test_token_stats_by_language_and_script(
    embedded_platform: Platform, admin: Actor, lm_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    embedded_platform.registry.import_model(admin, lm_dir, name="tiny")
    embedded_platform.datasets.import_path(admin, write_jsonl(tmp_path / "mix.jsonl", ROWS), name="mix")
    t = embedded_platform.datasets.token_stats("mix", "tiny:1", max_length=20)
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    counts = [len(tok(r["text"], add_special_tokens=False)["input_ids"]) for r in ROWS]
    assert (t.rows, t.rows_measured, t.tokens) == (4, 4, sum(counts))
    assert t.characters == sum(len(r["text"]) for r in ROWS)
    assert t.rows_over_max_length == sum(c > 20 for c in counts) and t.max_length == 20
    scripts = {g.group: g for g in t.by_script}
    assert set(scripts) == {"Latin", "Han"}
    assert scripts["Han"].tokens == sum(counts[2:]) and scripts["Latin"].tokens == sum(counts[:2])
    assert scripts["Latin"].ratio_vs_english == 1.0
    assert scripts["Han"].ratio_vs_english is not None and scripts["Han"].ratio_vs_english > 1.5
    languages = {g.group: g for g in t.by_language}
    assert languages["en"].ratio_vs_english == 1.0 and languages["zh"].rows == 2
    assert languages["zh"].ratio_vs_english == pytest.approx(
        (sum(counts[2:]) / sum(len(r["text"]) for r in ROWS[2:]))
        / (sum(counts[:2]) / sum(len(r["text"]) for r in ROWS[:2])),
        rel=1e-3,
    )
    assert t.token_lengths["max"] == max(counts) and t.token_lengths["min"] == min(counts)
    # Without --max-length the tokenizer's own model_max_length (128 in the factory) is the limit.
    assert embedded_platform.datasets.token_stats("mix", "tiny").max_length == 128
    with pytest.raises(InvalidInput, match="max_length must be at least 1"):
        embedded_platform.datasets.token_stats("mix", "tiny", max_length=0)


def test_cli_prints_the_cost_table(lm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    cli = CliRunner()
    assert cli.invoke(app, ["models", "import", str(lm_dir), "--name", "tiny"]).exit_code == 0
    assert (
        cli.invoke(app, ["data", "import", str(write_jsonl(tmp_path / "m.jsonl", ROWS)), "--name", "mix"]).exit_code
        == 0
    )
    result = cli.invoke(app, ["data", "stats", "mix", "--tokenizer", "tiny", "--max-length", "16"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "mix:1 on the tokenizer of tiny" in out and "× English" in out and "1.00×" in out
    assert "exceed 16 tokens" in out and "4 of 4 rows measured" in out
    Platform(Settings(home=tmp_path / "home")).close()
