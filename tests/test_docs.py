"""Documentation stays true: every CLI command is in the README, the README starts with the two
set-up commands, and the architecture page names every package that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from llmops.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands(group: Any, prefix: str) -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
            out += _commands(cmd, f"{prefix} {name}")
        else:
            out.append(f"{prefix} {name}")
    return out


def test_every_cli_command_is_documented() -> None:
    commands = _commands(typer.main.get_command(app), "llmops")
    assert len(commands) > 15
    missing = [c for c in commands if f"`{c}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_starts_with_exactly_two_setup_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    lines = [ln for ln in first_block.group(1).splitlines() if ln.strip()]
    assert [ln.split("#")[0].strip() for ln in lines] == ["make demo", "make test"]
    assert README.index("```sh") < README.index("## ")


def test_architecture_page_names_every_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(p.name for p in (ROOT / "src" / "llmops").iterdir() if (p / "__init__.py").exists())
    missing = [p for p in packages if f"llmops.{p}" not in page]
    assert not missing, f"docs/architecture.md does not describe: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
