"""One concurrent writer: runs, metric batches, principals (unique and contested), shared artifacts.

Used by ``tests/integration/test_concurrency.py`` both in threads of the test process (``work``) and as
a child process (``main``: prints ``ready``, waits for ``go`` on stdin, then prints its result as one
JSON line). Every writer does the same fixed amount of work so that the parent can compute the exact
expected row counts afterwards.
"""

from __future__ import annotations

import io
import json
import sys
import traceback
from typing import Any

from llmops.errors import AlreadyExists
from llmops.platform import Platform
from llmops.security.actor import Actor
from llmops.security.roles import Role
from llmops.settings import Settings

RUNS = 3
BATCHES = 4
POINTS = 250  # per batch
KEYS = ("loss", "accuracy")
UNIQUE_PRINCIPALS = 2
CONTESTED = ("contested-a", "contested-b", "contested-c")
SHARED_CONTENT = b"the same bytes, written by every writer\n" * 1000
COMMON_ARTIFACT = "common/shared.bin"


def work(platform: Platform, writer: str, common_run: str) -> dict[str, Any]:
    """Do one writer's share; unexpected exceptions are reported, not raised."""
    actor = Actor(name=writer, role=Role.admin, via="python")
    result: dict[str, Any] = {"writer": writer, "runs": [], "won": [], "lost": [], "digests": [], "errors": []}

    def attempt(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            result["errors"].append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return None

    for j in range(RUNS):
        run = attempt(platform.tracking.create_run, actor, kind="train", name=f"{writer}-r{j}", params={"j": j})
        if run is None:
            continue
        result["runs"].append(run.id)
        for b in range(BATCHES):
            points = [(key, float(b * POINTS + k), b * POINTS + k, 0) for k in range(POINTS) for key in KEYS]
            attempt(platform.tracking.log_metrics, run.id, points)
        art = attempt(platform.tracking.log_artifact, actor, run.id, "shared.bin", io.BytesIO(SHARED_CONTENT))
        if art is not None:
            result["digests"].append(art.digest)
    # Everyone logs the same artifact at the same path of the same run, and metrics into that run.
    art = attempt(platform.tracking.log_artifact, actor, common_run, COMMON_ARTIFACT, io.BytesIO(SHARED_CONTENT))
    if art is not None:
        result["digests"].append(art.digest)
    attempt(platform.tracking.log_metrics, common_run, [(writer, float(s), s, 0) for s in range(POINTS)])
    for k in range(UNIQUE_PRINCIPALS):
        if attempt(platform.security.create_principal, actor, f"user-{writer}-{k}") is not None:
            result["won"].append(f"user-{writer}-{k}")
    for name in CONTESTED:
        try:
            platform.security.create_principal(actor, name, role="developer")
            result["won"].append(name)
        except AlreadyExists:
            result["lost"].append(name)
        except Exception as exc:
            result["errors"].append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
    return result


def main() -> None:
    common_run = sys.argv[1]
    writer = sys.argv[2]
    platform = Platform(Settings(), migrate=False)
    platform.db.ping()  # connect before the start signal
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    print(json.dumps(work(platform, writer, common_run)), flush=True)
    platform.close()


if __name__ == "__main__":
    main()
