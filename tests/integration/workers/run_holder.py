"""Starts a run with ``Platform.start_run`` (as a training job would) and then just stays alive.

Used by ``tests/integration/test_run_reaper.py``, which SIGKILLs it. Prints ``run <run_id> <pid>``
once the run exists and its heartbeat thread is running.
"""

from __future__ import annotations

import os
import sys
import time

from llmops.platform import Platform
from llmops.settings import Settings


def main() -> None:
    platform = Platform(Settings(), migrate=False)
    run = platform.start_run(kind="train", name=sys.argv[1])
    print("run", run.id, os.getpid(), flush=True)
    while True:
        run.log_metric("alive", 1.0)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
