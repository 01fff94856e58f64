"""Metric logging throughput (points per second) on SQLite and PostgreSQL, batched against unbatched.

What is measured, and why
-------------------------
The issue's goal: >= 20,000 metric points/s logged in batches on SQLite (the embedded default), with
PostgreSQL reported next to it. A point is ``(key, value, step, ts_ms)`` appended to a run's series.
Every mode below runs on the same platform in one process, ``--repeat`` times (median reported), each
repetition on a fresh running run:

``unbatched``     the baseline ("before"): ``TrackingService.log_metrics(run, [point])``, one point per
                  call, i.e. one write transaction per point (``--unbatched-points``, default 5,000).
``batch_1000``    ``TrackingService.log_metrics(run, batch)`` with 1,000 points per call.
``batch_5000``    the same with 5,000 points per call (the ``ActiveRun`` flush size).
``active_run``    the Python API as a training loop uses it: ``run.log_metrics({"loss", "lr",
                  "grad_norm"}, step=i)`` at every step (3 points per step), buffered by ``ActiveRun``
                  and written by size or by its 1 s background flush, timed until a final
                  ``run.flush()`` has returned.
``raw_driver``    a reference, not a goal: the same rows as ``batch_5000`` inserted with the DB-API
                  driver's ``executemany`` in one transaction per batch, bypassing SQLAlchemy and the
                  service; shows how much of the time is the database and how much is Python on top.

Batched modes log ``--points`` points (default 200,000) per repetition; points are generated before
the clock starts (except in ``active_run``, where building the dict is part of the loop being
measured). Row counts are checked after each repetition (untimed).

PostgreSQL runs in a fresh schema (``CREATE SCHEMA t_bench_<hex>``, reached through
``?options=-csearch_path=...``), migrated by the platform and dropped at the end.

Run:  ``.venv/bin/python benchmarks/metric_logging.py [--points 200000] [--backends sqlite,postgresql]``
Writes ``benchmarks/results/metric_logging.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_info, summarize, utc_now, write_result  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from llmops.platform import Platform  # noqa: E402
from llmops.security.actor import local_admin  # noqa: E402
from llmops.settings import Settings  # noqa: E402
from llmops.tracking.service import now_ms  # noqa: E402
from llmops.tracking.tables import MetricPoint  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_POINTS_PER_S = 20_000
KEYS = ("loss", "lr", "grad_norm")

Point = tuple[str, float, int, int]


def make_points(n: int) -> list[Point]:
    ts = now_ms()
    return [(KEYS[i % 3], math.sin(i) + 2.0, i // 3, ts + i // 3) for i in range(n)]


@contextlib.contextmanager
def pg_schema(admin_url: str) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"t_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{admin_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


class Bench:
    """The modes, run against one ``Platform``."""

    def __init__(self, platform: Platform) -> None:
        self.p = platform
        self.actor = local_admin(via="python")

    def _new_run(self, label: str) -> str:
        return self.p.tracking.create_run(self.actor, kind="other", name=f"bench-{label}").id

    def _count(self, run_id: str) -> int:
        with self.p.db.read() as session:
            return int(session.scalar(select(func.count()).where(MetricPoint.run_id == run_id)) or 0)

    def _end(self, run_id: str) -> None:
        self.p.tracking.end_run(self.actor, run_id)

    def service(self, points: list[Point], batch: int) -> float:
        run_id = self._new_run(f"batch{batch}")
        log = self.p.tracking.log_metrics
        t0 = time.perf_counter()
        for i in range(0, len(points), batch):
            log(run_id, points[i : i + batch])
        elapsed = time.perf_counter() - t0
        assert self._count(run_id) == len(points)
        self._end(run_id)
        return elapsed

    def active_run(self, n_points: int) -> float:
        steps = n_points // len(KEYS)
        with self.p.start_run(kind="other", name="bench-active") as run:
            t0 = time.perf_counter()
            for step in range(steps):
                run.log_metrics({"loss": 1.0 / (step + 1), "lr": 3e-4, "grad_norm": 0.5 + step % 7}, step=step)
            run.flush()
            elapsed = time.perf_counter() - t0
            run_id = run.id
        assert self._count(run_id) == steps * len(KEYS)
        return elapsed

    def raw_driver(self, points: list[Point], batch: int) -> float:
        run_id = self._new_run("raw")
        pg = self.p.db.dialect == "postgresql"
        sql = (
            "INSERT INTO metric_points (run_id, key, step, value, ts) VALUES (%s, %s, %s, %s, %s)"
            if pg
            else "INSERT INTO metric_points (run_id, key, step, value, ts) VALUES (?, ?, ?, ?, ?)"
        )
        raw = self.p.db.engine.raw_connection()
        try:
            dbapi = raw.driver_connection
            assert dbapi is not None
            t0 = time.perf_counter()
            for i in range(0, len(points), batch):
                rows = [(run_id, k, s, v, ts) for k, v, s, ts in points[i : i + batch]]
                cur = dbapi.cursor()
                if not pg:
                    cur.execute("BEGIN IMMEDIATE")  # the engine leaves sqlite3 in autocommit mode
                cur.executemany(sql, rows)
                if pg:
                    dbapi.commit()
                else:
                    cur.execute("COMMIT")
                cur.close()
            elapsed = time.perf_counter() - t0
        finally:
            raw.close()
        assert self._count(run_id) == len(points)
        self._end(run_id)
        return elapsed


def run_backend(label: str, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    platform = Platform(settings)
    try:
        bench = Bench(platform)
        points = make_points(args.points)
        few = make_points(args.unbatched_points)
        modes: dict[str, tuple[int, Callable[[], float]]] = {
            "unbatched": (len(few), lambda: bench.service(few, 1)),
            "batch_1000": (len(points), lambda: bench.service(points, 1000)),
            "batch_5000": (len(points), lambda: bench.service(points, 5000)),
            "active_run": (args.points // 3 * 3, lambda: bench.active_run(args.points)),
            "raw_driver": (len(points), lambda: bench.raw_driver(points, 5000)),
        }
        bench.service(make_points(3000), 1000)  # warm-up: connections, statement caches, table pages
        times: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(args.repeat):
            for name, (_n, fn) in modes.items():  # interleaved, so drift hits every mode alike
                times[name].append(fn())
        out: dict[str, Any] = {}
        for name, (n, _fn) in modes.items():
            out[name] = {"points": n, **summarize(times[name], n)}
            rate, rates = out[name]["median_rate"], out[name]["rates"]
            print(f"  {label:10s} {name:11s} {rate:10.0f} points/s  {rates}", flush=True)
        base = out["unbatched"]["median_rate"]
        out["speedup_vs_unbatched"] = {
            name: round(out[name]["median_rate"] / base, 1) for name in modes if name != "unbatched"
        }
        out["database"] = {"dialect": platform.db.dialect, "server_version": _server_version(platform)}
        return out
    finally:
        platform.close()


def _server_version(platform: Platform) -> str:
    with platform.db.engine.connect() as conn:
        if platform.db.dialect == "postgresql":
            return str(conn.execute(text("SHOW server_version")).scalar())
        return "sqlite " + str(conn.execute(text("SELECT sqlite_version()")).scalar())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--points", type=int, default=200_000, help="points per batched repetition")
    parser.add_argument("--unbatched-points", type=int, default=5_000, help="points for the unbatched baseline")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per mode; the median is reported")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL admin URL (a schema is created in it)")
    parser.add_argument("--name", default="metric_logging", help="results file name (without .json)")
    args = parser.parse_args(argv)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    result: dict[str, Any] = {
        "benchmark": "metric_logging",
        "date_utc": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(Path(tempfile.gettempdir())),
        "parameters": {
            "points": args.points,
            "unbatched_points": args.unbatched_points,
            "repeat": args.repeat,
            "keys_per_step": len(KEYS),
            "units": "points per second; medians over repetitions",
        },
        "goal": {"points_per_s": GOAL_POINTS_PER_S, "compares": "SQLite, batched through TrackingService.log_metrics"},
        "backends": {},
    }
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
            if backend == "sqlite":
                print("SQLite ...", flush=True)
                result["backends"]["sqlite"] = run_backend("sqlite", Settings(home=Path(tmp)), args)
            elif backend == "postgresql":
                print("PostgreSQL ...", flush=True)
                with pg_schema(args.pg_url) as url:
                    settings = Settings(home=Path(tmp), database_url=url)
                    result["backends"]["postgresql"] = run_backend("postgresql", settings, args)
            else:
                parser.error(f"unknown backend {backend!r}")
    if "sqlite" in result["backends"]:
        s = result["backends"]["sqlite"]
        for mode in ("batch_1000", "batch_5000", "active_run"):
            result["goal"][f"sqlite_{mode}_met"] = s[mode]["median_rate"] >= GOAL_POINTS_PER_S
    result["finished_utc"] = utc_now()
    result["load_average_end"] = load_average()
    out = write_result(args.name, result)
    print(f"goal: {result['goal']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
