"""``llmops models …`` end to end on the embedded defaults (typer's runner, a fresh LLMOPS_HOME per test).

The commands are thin: each test drives a whole workflow through them and checks what a user sees (human
output and ``--json``), what lands on disk (pulled files byte for byte), and that every refusal is an
``error: …`` line with exit status 1, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmops.cli.main import app
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.settings import Settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    return CliRunner()


@pytest.fixture
def home_platform(cli: CliRunner) -> Iterator[Platform]:
    """The installation the CLI acts on, opened in-process (for what no command does, like an eval run)."""
    platform = Platform(Settings())
    yield platform
    platform.close()


def run(cli: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = cli.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    if code == 1 and result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: raised {result.exception!r}")
    return " ".join(result.output.split())  # rich wraps long lines: compare with whitespace collapsed


def run_json(cli: CliRunner, *args: str) -> Any:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return json.loads(result.output)


def error(cli: CliRunner, *args: str) -> str:
    """Run a command that must fail as a domain error: ``error: …`` and exit status 1, no traceback."""
    out = run(cli, *args, code=1)
    assert out.startswith("error: ") and "Traceback" not in out, out
    return out


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_import_list_versions_show_pull(
    cli: CliRunner, llama_dir: Path, llama_partial_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run(cli, "models", "import", str(llama_dir), "--name", "llama", "--description", "the base")
    assert out.startswith("imported llama:1 (hf-transformers, LlamaForCausalLM,") and "21 tensors" in out, out
    assert "identical to llama:1: nothing new stored" in run(cli, "models", "import", str(llama_dir), "--name", "llama")

    tags = ["--tag", "team=nlp", "--tag", "note=a=b"]
    report = run_json(cli, "models", "import", str(llama_partial_dir), "--name", "llama", "--base", "llama:1", *tags)
    version = report["version"]
    assert (version["ref"], version["base"], version["derivation"]) == ("llama:2", "llama:1", "finetune")
    assert version["tags"] == {"team": "nlp", "note": "a=b"}
    assert not report["reused_existing_version"] and report["delta_tensors"] > 0
    assert report["deduplicated_tensors"] > 0 and report["tensors"] == 21

    models = run_json(cli, "models", "list")
    assert [(m["name"], m["versions"], m["latest"]) for m in models] == [("llama", 2, 2)]
    listing = run(cli, "models", "list")
    assert "llama" in listing and "cli:" in listing

    versions = run_json(cli, "models", "versions", "llama")
    assert [(v["ref"], v["base"]) for v in versions] == [("llama:2", "llama:1"), ("llama:1", None)]
    assert "llama:2" in run(cli, "models", "versions", "llama")

    card = run(cli, "models", "show", "llama:1")
    assert "hf-transformers" in card and "LlamaForCausalLM" in card and "model.safetensors" in card
    assert "model.embed_tokens.weight" not in card
    tensors = run(cli, "models", "show", "llama:2", "--tensors")
    assert "model.embed_tokens.weight" in tensors and "xor-zstd" in tensors
    detail = run_json(cli, "models", "show", "llama")  # the latest version
    assert detail["ref"] == "llama:2" and len(detail["tensors"]) == 21
    assert {f["path"] for f in detail["files"]} == set(file_hashes(llama_partial_dir))

    for ref, src in (("llama:1", llama_dir), ("llama:2", llama_partial_dir)):
        dest = tmp_path / ref.replace(":", "-")
        assert f"{ref} written to" in run(cli, "models", "pull", ref, str(dest))
        assert file_hashes(dest) == file_hashes(src)
    assert "is not an empty directory" in error(cli, "models", "pull", "llama:1", str(tmp_path / "llama-1"))
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    assert "written to" in run(cli, "models", "pull", "--no-fsync", "llama:2", str(tmp_path / "fast"))
    assert file_hashes(tmp_path / "fast") == file_hashes(llama_partial_dir) and synced == []
    run(cli, "models", "pull", "llama:2", str(tmp_path / "durable"))
    assert len(synced) == len(file_hashes(llama_partial_dir))  # the default fsyncs every file


def test_aliases_lineage_diff_and_delete(
    cli: CliRunner, llama_dir: Path, llama_partial_dir: Path, llama_continued_dir: Path
) -> None:
    run(cli, "models", "import", str(llama_dir), "--name", "llama")
    run(cli, "models", "import", str(llama_continued_dir), "--name", "llama", "--base", "llama:1")
    run(cli, "models", "import", str(llama_partial_dir), "--name", "partial", "--base", "llama:1")

    assert "staging → version 1" in run(cli, "models", "alias", "set", "llama:1", "staging")
    assert "staging → version 2" in run(cli, "models", "alias", "set", "llama:2", "staging", "--reason", "better")
    history = run_json(cli, "models", "alias", "history", "llama", "staging")
    assert [(e["from_version"], e["to_version"], e["reason"]) for e in history] == [(1, 2, "better"), (None, 1, None)]
    assert "better" in run(cli, "models", "alias", "history", "llama")
    assert "llama@staging rolled back to version 1" in run(cli, "models", "alias", "rollback", "llama", "staging")
    assert run_json(cli, "models", "list")[0]["aliases"] == {"staging": 1}
    assert run_json(cli, "models", "show", "llama@staging")["ref"] == "llama:1"

    lineage = run_json(cli, "models", "lineage", "partial:1")
    assert (lineage["ref"], lineage["derivation"], lineage["base"]["ref"]) == ("partial:1", "finetune", "llama:1")
    assert run_json(cli, "models", "lineage", "llama:1")["derived"] == ["llama:2", "partial:1"]
    tree = run(cli, "models", "lineage", "partial:1")
    assert "partial:1 (finetune)" in tree and "base: llama:1 (import)" in tree

    diff = run_json(cli, "models", "diff", "llama:1", "partial:1")
    assert diff["changed"] > 0 and diff["unchanged"] > 0 and diff["added"] == diff["removed"] == 0
    changed = [t for t in diff["tensors"] if t["status"] == "changed"]
    assert all(t["relative_l2"] > 0 for t in changed)
    table = run(cli, "models", "diff", "llama:1", "partial:1")
    assert f"{diff['changed']} changed" in table and changed[0]["name"] in table

    # Deletion: needs --yes (or a yes), is refused while deltas depend on the version, then works.
    assert "Aborted" in run(cli, "models", "delete", "partial:1", code=1, stdin="n\n")
    refused = error(cli, "models", "delete", "llama:1", "--yes")
    assert "staging" in refused  # the alias is named first
    run(cli, "models", "alias", "set", "llama:2", "staging")
    refused = error(cli, "models", "delete", "llama:1", "--yes")
    assert "llama:1 cannot be deleted" in refused and "partial:1" in refused and "llama:2" in refused, refused
    assert "deleted partial:1" in run(cli, "models", "delete", "partial:1", stdin="y\n")
    assert "has no version 1" in error(cli, "models", "show", "partial:1")
    assert "llama:2" in error(cli, "models", "delete", "llama:1", "--yes")  # llama:2 still depends on it


def test_keygen_sign_verify(cli: CliRunner, llama_dir: Path, tmp_path: Path) -> None:
    run(cli, "models", "import", str(llama_dir), "--name", "llama")
    key = tmp_path / "signing.pem"
    out = run(cli, "models", "keygen", str(key))
    public = out.rsplit("public key ", 1)[1].strip()
    assert key.exists() and key.with_suffix(".pub.pem").exists() and len(public) == 64
    assert "refusing to overwrite" in error(cli, "models", "keygen", str(key))

    assert "missing, invalid or untrusted" in run(cli, "models", "verify", "llama:1", code=1)
    assert f"signed llama:1 with public key {public}" in run(cli, "models", "sign", "llama:1", "--key", str(key))
    assert "signature valid" in run(cli, "models", "verify", "llama:1")
    assert "signature valid" in run(cli, "models", "verify", "llama:1", "--trusted-key", public)
    run(cli, "models", "verify", "llama:1", "--trusted-key", "00" * 32, code=1)
    assert run_json(cli, "models", "show", "llama:1")["signature"]["public_key"] == public
    assert "not a readable" in error(cli, "models", "sign", "llama:1", "--key", str(key.with_suffix(".pub.pem")))


def test_policy_check_and_promotion_on_evidence(
    cli: CliRunner, home_platform: Platform, llama_dir: Path, llama_partial_dir: Path, tmp_path: Path
) -> None:
    run(cli, "models", "import", str(llama_dir), "--name", "llama")
    run(cli, "models", "import", str(llama_partial_dir), "--name", "llama", "--base", "llama:1")
    assert "satisfies the promotion policy" in run(cli, "models", "check", "llama:1")  # the default policy

    policy = tmp_path / "policy.yaml"
    policy.write_text("protected_aliases: [production]\nevaluations:\n- {metric: accuracy, op: '>=', value: 0.8}\n")
    assert "policy of llama updated" in run(cli, "models", "policy", "set", "llama", "--file", str(policy))
    shown = run(cli, "models", "policy", "show", "llama")
    assert "metric: accuracy" in shown and "value: 0.8" in shown

    failed = run(cli, "models", "check", "llama:1", code=1)
    assert "no finished eval run that read this version logged 'accuracy'" in failed, failed
    refused = error(cli, "models", "alias", "set", "llama:1", "production")
    assert "refused" in refused and "accuracy" in refused

    # Evidence: finished eval runs that read the versions (lineage input), one good and one not good enough.
    tracking, actor = home_platform.tracking, local_admin(via="python")
    for ref, accuracy in (("llama:1", 0.91), ("llama:2", 0.5)):
        eval_run = tracking.create_run(actor, kind="eval", name=f"eval-{ref.replace(':', '-')}")
        tracking.log_metrics(eval_run.id, [("accuracy", accuracy, 0, 0)])
        tracking.add_lineage(actor, eval_run.id, "input", "model_version", ref)
        tracking.end_run(actor, eval_run.id)

    assert "llama:1 satisfies the promotion policy" in run(cli, "models", "check", "llama:1")
    assert "accuracy >= 0.8 not met (best evidence 0.5)" in run(cli, "models", "check", "llama:2", code=1)
    assert "production → version 1" in run(cli, "models", "alias", "set", "llama:1", "production")
    assert "refused" in error(cli, "models", "alias", "set", "llama:2", "production")
    assert run_json(cli, "models", "list")[0]["aliases"] == {"production": 1}

    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluations:\n  - metric: accuracy\n    value: high\n")
    assert "evaluations.0.value" in error(cli, "models", "policy", "set", "llama", "--file", str(bad))
    bad.write_text("protected: [production]\n")
    assert "protected" in error(cli, "models", "policy", "set", "llama", "--file", str(bad))
    bad.write_text("evaluations: [\n")
    assert "not valid YAML" in error(cli, "models", "policy", "set", "llama", "--file", str(bad))


def test_errors_are_one_line_and_exit_1(cli: CliRunner, llama_dir: Path, tmp_path: Path) -> None:
    assert "model 'ghost' does not exist" in error(cli, "models", "show", "ghost")
    assert "does not exist" in error(cli, "models", "versions", "ghost")
    assert "must be a positive number" in error(cli, "models", "show", "a:b")
    assert "must be a positive number" in error(cli, "models", "pull", "llama:0", str(tmp_path / "x"))
    assert "is not valid" in error(cli, "models", "show", "llama@Prod!")
    out = error(cli, "models", "import", str(llama_dir), "--name", "llama", "--tag", "novalue")
    assert "--tag 'novalue': write key=value" in out
    assert "is not a directory" in error(cli, "models", "import", str(tmp_path / "missing"), "--name", "llama")
    assert "does not exist" in error(cli, "models", "import", str(llama_dir), "--name", "llama", "--base", "ghost:1")
    assert run_json(cli, "models", "list") == []  # nothing was created by the failed imports
    run(cli, "models", "import", str(llama_dir), "--name", "llama")
    assert "has no version 7" in error(cli, "models", "show", "llama:7")
    assert "has no alias 'production'" in error(cli, "models", "pull", "llama@production", str(tmp_path / "y"))
    assert "no previous version" in error(cli, "models", "alias", "rollback", "llama", "staging")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    run(cli, "models", "import", str(llama_dir), code=2)  # a usage error (no --name) is exit status 2
