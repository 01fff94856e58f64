"""``ActiveRun``: the Python API's handle on a run in progress.

Metric points are buffered and written in batches (by size, or every ``flush_seconds`` from a
background thread), so a training loop can log at every step without waiting on the database.
The same thread sends heartbeats. Leaving the ``with`` block ends the run: ``finished`` on success,
``killed`` on KeyboardInterrupt, ``failed`` on any other exception (whose type and message become the
run's end reason).
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from llmops.errors import Conflict
from llmops.security.actor import Actor
from llmops.tracking.schemas import ArtifactOut, RunDetail, RunOut
from llmops.tracking.service import TrackingService, check_metric, now_ms

FLUSH_POINTS = 5000


class ActiveRun:
    def __init__(
        self,
        service: TrackingService,
        actor: Actor,
        run: RunOut,
        *,
        flush_seconds: float = 1.0,
        heartbeat_seconds: float = 10.0,
    ) -> None:
        self.service = service
        self.actor = actor
        self.info = run
        self.id = run.id
        self._buffer: list[tuple[str, float, int, int]] = []
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flush_seconds = flush_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._error: BaseException | None = None
        self._ended = False
        self._thread = threading.Thread(target=self._background, name=f"llmops-run-{run.id[:8]}", daemon=True)
        self._thread.start()

    # logging --------------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.service.log_params(self.id, {**(params or {}), **kwargs})

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, str] | None = None, **kwargs: str) -> None:
        self.service.set_tags(self.actor, self.id, {**(tags or {}), **kwargs})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer one value per key; ``step`` defaults to the next step of each key.

        Points are checked here, not at the (later) flush: a bad point raises ``InvalidInput`` at the
        call that logged it and never poisons the buffer; logging to an ended run is a ``Conflict``.
        """
        if self._ended:
            raise Conflict(f"run {self.id} has ended; start a new run to log more")
        ts = now_ms()
        values = {key: check_metric(key, value, step) for key, value in metrics.items()}
        with self._lock:
            for key, value in values.items():
                s = step if step is not None else self._steps.get(key, -1) + 1
                self._steps[key] = max(s, self._steps.get(key, -1))
                self._buffer.append((key, value, s, ts))
            full = len(self._buffer) >= FLUSH_POINTS
        if full:
            self.flush()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> ArtifactOut:
        path = Path(local_path)
        with open(path, "rb") as fh:
            return self.service.log_artifact(self.actor, self.id, artifact_path or path.name, fh)

    def log_text(self, text: str, artifact_path: str) -> ArtifactOut:
        return self.service.log_artifact(self.actor, self.id, artifact_path, io.BytesIO(text.encode()))

    def log_dict(self, data: Mapping[str, Any], artifact_path: str) -> ArtifactOut:
        return self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_path)

    def add_input(self, entity_kind: str, entity_ref: str) -> None:
        self.service.add_lineage(self.actor, self.id, "input", entity_kind, entity_ref)

    def add_output(self, entity_kind: str, entity_ref: str) -> None:
        self.service.add_lineage(self.actor, self.id, "output", entity_kind, entity_ref)

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            try:
                self.service.log_metrics(self.id, batch)
            except BaseException:
                with self._lock:  # keep the points for the next try
                    self._buffer[:0] = batch
                raise

    def detail(self) -> RunDetail:
        self.flush()
        return self.service.get_run(self.id)

    # lifecycle ------------------------------------------------------------------------------------
    def end(self, status: str = "finished", reason: str | None = None) -> None:
        if self._ended:
            raise Conflict(f"run {self.id} has already ended")
        self._ended = True
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.flush()
        finally:
            self.service.end_run(self.actor, self.id, status, reason)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ended:  # ended explicitly inside the block: keep that status
            return
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end("finished")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("killed", "KeyboardInterrupt")
        else:
            self.end("failed", f"{type(exc).__name__}: {exc}"[:4000])

    def _background(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
                if time.monotonic() - last_beat >= self._heartbeat_seconds:
                    self.service.heartbeat(self.id)
                    last_beat = time.monotonic()
            except Exception as exc:  # reported at the next foreground flush/end; keep trying
                self._error = exc
