"""Settings: defaults, validation, masking, and that every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmops.settings import Settings, mask_url_password

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_live_in_home(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path}/llmops.db"
    assert s.blob_url == f"file://{tmp_path}/blobs"
    assert (s.host, s.port) == ("127.0.0.1", 8080)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    monkeypatch.setenv("LLMOPS_PORT", "9999")
    monkeypatch.setenv("LLMOPS_BLOB_URL", "s3://bucket/prefix")
    s = Settings()
    assert s.home == tmp_path and s.port == 9999 and s.blob_url == "s3://bucket/prefix"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database_url", "mysql://x/y", "LLMOPS_DATABASE_URL"),
        ("blob_url", "ftp://x/y", "LLMOPS_BLOB_URL"),
        ("blob_url", "s3:///nobucket", "needs a bucket"),
        ("port", 70000, "port"),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(home=tmp_path, **{field: value})  # type: ignore[arg-type]


def test_unknown_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="extra"):
        Settings(home=tmp_path, databse_url="x")  # type: ignore[call-arg]


def test_masked_hides_secrets(tmp_path: Path) -> None:
    s = Settings(
        home=tmp_path,
        database_url="postgresql://user:hunter2@db:5432/llmops",
        s3_secret_access_key="topsecret",
        s3_access_key_id="AKIA123",
    )
    shown = s.masked()
    text = repr(shown)
    assert "hunter2" not in text and "topsecret" not in text and "AKIA123" not in text
    assert shown["database_url"] == "postgresql://user:***@db:5432/llmops"
    assert shown["s3_secret_access_key"] == "********"


def test_mask_url_without_password_is_unchanged() -> None:
    assert mask_url_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    documented = set(re.findall(r"LLMOPS_[A-Z0-9_]+", docs))
    missing = [f"LLMOPS_{name.upper()}" for name in Settings.model_fields if f"LLMOPS_{name.upper()}" not in documented]
    assert not missing, f"settings missing from README.md/docs: {missing}"
