"""``llmops.start_run`` works on the default platform, configured by ``LLMOPS_HOME``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import llmops
import llmops.platform
from llmops.platform import Platform
from llmops.settings import Settings


@pytest.fixture
def llmops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh default platform rooted in a temporary LLMOPS_HOME; closed and forgotten afterwards."""
    home = tmp_path / "llmops-home"
    for var in ("LLMOPS_DATABASE_URL", "LLMOPS_BLOB_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LLMOPS_HOME", str(home))
    monkeypatch.setattr(llmops.platform, "_default", None)
    yield home
    if llmops.platform._default is not None:
        llmops.platform._default.close()
    llmops.platform._default = None


def test_top_level_start_run_uses_llmops_home(llmops_home: Path) -> None:
    with llmops.start_run(kind="train", name="from-env", params={"seed": 1}) as run:
        run.log_metric("loss", 0.5)
        run.log_text("ok", "status.txt")
    default = llmops.default_platform()
    assert default is llmops.default_platform()  # opened once per process
    assert default.settings.home == llmops_home.resolve()
    assert (llmops_home / "llmops.db").is_file()

    # A second platform on the same home sees the run: it really was written there.
    other = Platform(Settings(home=llmops_home))
    try:
        detail = other.tracking.get_run(run.id)
        assert (detail.status, detail.params, [m.count for m in detail.metrics]) == ("finished", {"seed": "1"}, [1])
        _, stream = other.tracking.open_artifact(run.id, "status.txt")
        with stream:
            assert stream.read() == b"ok"
    finally:
        other.close()
