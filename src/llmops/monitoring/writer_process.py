"""The gateway's request writers in a process of their own: the gateway only pickles batches and sends them.

Why
---
``llmops serve`` is one asyncio event loop that spends about 8.8 ms of CPU per proxied request. Its request
writers used to run in the same process: :class:`~llmops.monitoring.writer.DatabaseWriter` in a worker thread
(quality signals, PII redaction, the SQLite insert: about 313 µs per record, holding the GIL most of that time)
and :class:`~llmops.serving.records.LogWriter` on the event loop (about 72 µs per record). With full request
logging the gateway spent about three times the writers' own cost in extra CPU per request: the writer thread
and the event loop contended for the GIL (the convoy effect: whenever the loop releases the GIL for a system
call the busy writer thread takes it, and the loop waits up to the 5 ms switch interval to get it back), and
throughput with full logging measured 0.93 and 0.82 of logging off, against a goal of 0.95
(``benchmarks/request_logging.py``). In a child process the writers have their own interpreter and GIL, and
on a machine with a spare core their work no longer slows serving at all.

How
---
:class:`WriterProcess` is a :class:`~llmops.serving.records.RecordWriterGroup` that the gateway's
:class:`~llmops.serving.records.BufferedSink` flushes batches to:

- The child starts on the first batch (an app that never serves a request never starts one) as
  ``python -m llmops.monitoring.writer_process FD``: a fork immediately followed by an exec of a fresh
  interpreter (spawn semantics: the gateway has threads and an event loop, so it is never forked without an
  exec). ``multiprocessing``'s spawn would re-import the parent's ``__main__`` in the child, which costs the
  whole CLI for ``llmops serve`` and starts a second server for a script that calls ``uvicorn.run`` without a
  ``__main__`` guard. The two ends of a socket pair carry :mod:`multiprocessing.connection` messages; what the
  child needs (:class:`WriterConfig`: the database URL, whether to log, the log level) goes over it, never on
  the command line, where the URL's password would be public.
- The child ignores SIGINT and SIGTERM (a Ctrl-C in the terminal or systemd's SIGTERM to the whole control
  group would otherwise end it before the gateway's final flush), configures logging as ``llmops serve`` does
  (stderr, inherited, so the JSON lines land in the gateway's stream or file), opens its own database engine
  on the same URL and answers ``ready``.
- Per batch the gateway pickles the records and sends them on a thread (the event loop never blocks), and
  awaits the answer: per writer, None or the error. So ``written``, ``failed`` and
  ``llmops_records_failed_total{writer="DatabaseWriter"}`` stay exact, with the same labels as in-process writers.
- The child exits on EOF: when the gateway closes its end (``close``, from the sink's ``stop``) or dies (the
  kernel closes it). When the child dies or answers nothing for ``reply_timeout`` seconds, the batch in flight
  counts as failed for every writer, the child is killed and reaped, and the next batch starts a new one; after
  failures in a row the next start waits (1, 2, 5, 10, then 30 s) so that a child that cannot start does not
  take the gateway's CPU in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from llmops.serving.records import LogWriter, RequestRecord, describe

if TYPE_CHECKING:
    from llmops.settings import Settings

log = logging.getLogger("llmops.serving")

MODULE = "llmops.monitoring.writer_process"
RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before starting a new child after 1, 2, 3, … failures of the child in a row (the last repeats)."""
LOG_WRITER, DATABASE_WRITER = "LogWriter", "DatabaseWriter"


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """What the writer process builds its writers from: plain values, sent to the child pickled.

    ``log``: :class:`~llmops.serving.records.LogWriter` (a JSON line per record on ``llmops.requests``);
    ``database_url``: :class:`~llmops.monitoring.writer.DatabaseWriter` into that database, None for none.
    Writers run in that order (log first), as in the gateway's own process.
    """

    log: bool
    database_url: str | None
    log_level: str = "INFO"

    @classmethod
    def from_settings(cls, settings: Settings) -> WriterConfig:
        return cls(
            log=settings.request_log,
            database_url=settings.database_url if settings.request_store else None,
            log_level=settings.log_level,
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The writers' class names: the ``writer`` label of their failures."""
        return ((LOG_WRITER,) if self.log else ()) + ((DATABASE_WRITER,) if self.database_url is not None else ())


class _ChildFailed(Exception):
    """The child died, hung, or could not start: every writer's batch is lost."""


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    conn: Connection

    def stop(self, timeout: float) -> int | None:
        """Close our end (the child exits on EOF), wait up to ``timeout`` s, then kill. Returns the exit status."""
        with contextlib.suppress(OSError):
            self.conn.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not take 10 s
            return None


class WriterProcess:
    """The writers of ``config`` in a child process (see the module docstring).

    ``reply_timeout``: seconds a batch may take before the child counts as hung; ``start_timeout``: seconds the
    child may take to start (imports, engine); ``close_timeout``: seconds ``close`` waits for it to exit.
    """

    def __init__(
        self,
        config: WriterConfig,
        *,
        reply_timeout: float = 30.0,
        start_timeout: float = 60.0,
        close_timeout: float = 5.0,
    ) -> None:
        if not config.names:
            raise ValueError("a writer process needs at least one writer (log or database)")
        self.config = config
        self.names = config.names
        self.reply_timeout = reply_timeout
        self.start_timeout = start_timeout
        self.close_timeout = close_timeout
        self.starts = 0  # children started so far
        self._lock = threading.Lock()  # one exchange with the child at a time
        self._child: _Child | None = None
        self._closes = 0  # close_now calls so far: a child that an exchange started across one is stopped
        self._failures = 0  # child failures in a row (start, death, hang)
        self._retry_at = 0.0  # monotonic time before which no new child starts
        self._last_failure = ""

    @property
    def pid(self) -> int | None:
        """The current child's process id; None while there is none."""
        child = self._child
        return child.proc.pid if child is not None else None

    async def write_all(self, records: Sequence[RequestRecord]) -> dict[str, str | None]:
        if not records:
            return dict.fromkeys(self.names)
        return await asyncio.to_thread(self._exchange, records)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_now)

    def close_now(self) -> None:
        """End the child: it has answered every batch sent, so it exits on EOF at once."""
        self._closes += 1
        acquired = self._lock.acquire(timeout=self.close_timeout)
        try:
            child, self._child = self._child, None
            if child is None:
                return
            if acquired:
                child.stop(self.close_timeout)
            else:  # an exchange is stuck on the child: killing it ends the exchange (EOF), which cleans up
                child.kill()
        finally:
            if acquired:
                self._failures, self._retry_at = 0, 0.0
                self._lock.release()

    # --- on the sender thread ---------------------------------------------------------------------------------
    def _exchange(self, records: Sequence[RequestRecord]) -> dict[str, str | None]:
        with self._lock:
            closes = self._closes
            try:
                return self._exchange_locked(records)
            finally:
                # ``close`` gave up waiting for this exchange (a slow start at shutdown): stop what it left running
                child = self._child
                if self._closes != closes and child is not None:
                    self._child = None
                    child.stop(self.close_timeout)

    def _exchange_locked(self, records: Sequence[RequestRecord]) -> dict[str, str | None]:
        try:
            payload = pickle.dumps(list(records), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # nothing was sent: the child is fine
            return dict.fromkeys(self.names, f"records do not pickle ({describe(exc)})")
        try:
            child = self._child or self._start()
            reply = self._send(child, payload)
        except _ChildFailed as exc:
            return dict.fromkeys(self.names, str(exc))
        self._failures = 0
        return {name: reply.get(name, "the writer process did not report this writer") for name in self.names}

    def _send(self, child: _Child, payload: bytes) -> dict[str, str | None]:
        try:
            child.conn.send_bytes(payload)  # a batch larger than the socket's buffer waits for the child to read
            if not child.conn.poll(self.reply_timeout):
                raise self._fail(child, f"the writer process answered nothing within {self.reply_timeout:g} s")
            reply = child.conn.recv()
        except BlockingIOError:  # the send timeout (SO_SNDTIMEO): the child stopped reading
            raise self._fail(child, f"the writer process took no batch within {self.reply_timeout:g} s") from None
        except (OSError, EOFError):
            raise self._fail(child, "the writer process died") from None
        if not isinstance(reply, dict):
            raise self._fail(child, f"the writer process answered {type(reply).__name__}, not a dict")
        return reply

    def _start(self) -> _Child:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise _ChildFailed(f"{self._last_failure}; the writer process restarts in {wait:.0f} s")
        ours, theirs = socket.socketpair()
        # A hung child must not block a send for ever either: writes give up after the reply timeout.
        seconds = max(self.reply_timeout, 0.001)
        timeval = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            raise self._fail(None, f"the writer process could not start ({describe(exc)})") from None
        finally:
            theirs.close()
        child = _Child(proc, Connection(ours.detach()))
        try:
            child.conn.send(self.config)
            if not child.conn.poll(self.start_timeout):
                raise self._fail(child, f"the writer process did not start within {self.start_timeout:g} s")
            kind, detail = child.conn.recv()
        except (OSError, EOFError):
            raise self._fail(child, "the writer process died while starting") from None
        if kind != "ready":
            raise self._fail(child, f"the writer process could not start ({detail})")
        self._child = child
        self.starts += 1
        log.info("request records: writer process %d started (%s)", proc.pid, ", ".join(self.names))
        return child

    def _fail(self, child: _Child | None, reason: str) -> _ChildFailed:
        """Kill and reap ``child``, note the failure, and return the error to raise."""
        if child is not None:
            status = child.kill()
            with contextlib.suppress(OSError):
                child.conn.close()
            if self._child is child:
                self._child = None
            if status is not None and status < 0:
                reason += f" (killed by signal {signal.strsignal(-status) or -status})"
            elif status is not None:
                reason += f" (exit status {status})"
        self._failures += 1
        delay = RESTART_DELAYS[min(self._failures, len(RESTART_DELAYS)) - 1]
        self._retry_at = time.monotonic() + delay
        self._last_failure = reason
        log.warning(
            "request records: %s; its batch is lost for %s; a new writer process starts %s",
            reason,
            ", ".join(self.names),
            f"in {delay:g} s" if delay else "with the next batch",
        )
        return _ChildFailed(reason)


# --- in the child -----------------------------------------------------------------------------------------------
WriteNow = Callable[[Sequence[RequestRecord]], Any]


def build_writers(config: WriterConfig) -> tuple[list[tuple[str, WriteNow]], Callable[[], None]]:
    """The writers of ``config`` as (name, synchronous write), and what closes them (the database engine)."""
    writers: list[tuple[str, WriteNow]] = []
    if config.log:
        writers.append((LOG_WRITER, LogWriter().write_now))
    if config.database_url is None:
        return writers, lambda: None
    from llmops.db.database import Database
    from llmops.monitoring.store import RequestStore
    from llmops.monitoring.writer import DatabaseWriter

    db = Database(config.database_url, pool_size=1)  # one batch at a time: one connection
    writers.append((DATABASE_WRITER, DatabaseWriter(RequestStore(db)).write_now))
    return writers, db.dispose


def serve(conn: Connection, writers: Sequence[tuple[str, WriteNow]]) -> None:
    """Answer batches until the gateway closes its end (or dies)."""
    names = [name for name, _ in writers]
    while True:
        try:
            payload = conn.recv_bytes()
        except (EOFError, OSError):
            return
        outcome: dict[str, str | None] = {}
        try:
            records = pickle.loads(payload)
        except Exception as exc:
            outcome = dict.fromkeys(names, f"records do not unpickle ({describe(exc)})")
        else:
            for name, write in writers:
                try:
                    write(records)
                    outcome[name] = None
                except Exception as exc:
                    outcome[name] = describe(exc)
        try:
            conn.send(outcome)
        except OSError:
            return


def child_main(fd: int) -> int:
    """The writer process: read the config, build the writers, answer ``ready``, then serve batches."""
    from llmops.settings import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with Connection(fd) as conn:
        try:
            config: WriterConfig = conn.recv()
        except (EOFError, OSError):
            return 0
        configure_logging(config.log_level)
        try:
            writers, close = build_writers(config)
        except Exception as exc:
            conn.send(("failed", describe(exc)))
            return 1
        conn.send(("ready", os.getpid()))
        try:
            serve(conn, writers)
        finally:
            close()
    return 0


__all__ = ["WriterConfig", "WriterProcess", "build_writers", "child_main", "serve"]

if __name__ == "__main__":
    # Run under the module's real name, the one the pickled WriterConfig refers to (not a second copy).
    from llmops.monitoring.writer_process import child_main as _main

    sys.exit(_main(int(sys.argv[1])))
