"""The same cleaning recipe through the in-process executor and the Ray executor (local Ray, 2 CPUs), in one run.

What is measured, and why
-------------------------
The issue's benchmark: "In-process versus Ray executor on the same transform." Both executors drive the same
stages (``llmops.datasets.pipeline``); the in-process one streams Parquet batches through them in this
process, the Ray one runs each stage as a Ray Data ``map_batches`` on workers and keeps the global decisions
(dedup) on the driver. The question is what Ray costs or gains on one machine, and that both give the same
output.

The dataset (``--rows``, default 200,000; ``--seed``) comes from ``_textgen.py`` (English-like Zipf text,
10 % Chinese), with something for every step to do: rows with full-width characters, zero-width and control
characters and irregular whitespace (normalize); rows that are too short, in other languages (German, French,
Russian, Spanish sentences), repetitive, or symbol spam (filters); exact copies after case and whitespace
changes (exact dedup); near copies at Jaccard 0.85–0.99 (MinHash dedup); e-mail addresses, phone numbers,
card numbers and keys (PII). The recipe is ``examples/recipes/clean.yaml`` without its split step:

    normalize → filter (length in tokens ≥ 5, language en/zh ≥ 0.5, script Latin/Han, repetition, symbols)
    → dedup exact → dedup minhash (threshold 0.8, seed 1) → pii (all types)

Each executor runs ``Executor.run(recipe, source, target, kind="text")`` on the same Parquet file, in
batches of 10,000 rows (the default of both), ``--repeat`` times alternately (in-process first); the median
wall time is reported, with rows/s of input rows. Ray is started once before the first Ray run with
``ray.init(num_cpus=2)`` (its start-up time is recorded separately, not in the runs). CPU time of this
process is recorded too; Ray's worker processes are not in it.

Identical output: the platform's content digest of each output file (``DatasetVersion.content_digest``:
BLAKE3 over the schema and the canonical encoding of every row, in order) and the equality of the reports.
Whether the files are also byte-identical is recorded (``byte_identical_files``, from their SHA-256): the
sink writes row groups of a fixed size, but the Parquet writer's page boundaries follow the chunks of the
tables it is given, and those follow each executor's batches.

Run:  ``.venv/bin/python benchmarks/dataset_executors.py [--rows 200000] [--repeat 1] [--seed 0] [--dir DIR]``
Writes ``benchmarks/results/dataset_executors.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import load_average, machine_info, utc_now, write_result  # noqa: E402
from _textgen import TextGenerator  # noqa: E402
from pii_redaction import Values  # noqa: E402

RECIPE = """
name: clean-en-zh-bench
steps:
  - normalize: {}
  - filter:
      length: {unit: tokens, min: 5, max: 100000}
      language: {allow: [en, zh], min_confidence: 0.5}
      script: {allow: [Latin, Han]}
      repetition: {}
      symbols: {max_symbol_ratio: 0.25}
  - dedup: {kind: exact}
  - dedup: {kind: minhash, threshold: 0.8, seed: 1}
  - pii: {}
"""
OTHER_LANGUAGES = [
    "Der Zug nach Berlin hatte heute Morgen wieder eine halbe Stunde Verspätung, und niemand wusste warum.",
    "Nous avons passé tout le week-end à la campagne chez mes grands-parents, loin du bruit de la ville.",
    "Вчера вечером мы долго гуляли по набережной и разговаривали о планах на следующее лето.",
    "El mercado del barrio abre todos los sábados por la mañana y siempre está lleno de gente.",
]
SHARES = {
    "plain": 0.73,
    "messy": 0.05,
    "short": 0.02,
    "other_language": 0.01,
    "repetitive": 0.005,
    "spam": 0.005,
    "exact": 0.03,
    "near": 0.05,
    "pii": 0.10,
}
"""Share of the rows of each kind (a "near" row copies the row before it when that row is long enough, an
"exact" row copies any earlier row)."""
SPAM = "Great deals today only!!! $$$ ### @@@ ~~~ ^^^ *** +++ === <<< >>> ||| %%% &&& !!!"


def generate(rows: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """The texts, and how many rows of each kind were planted."""
    gen = TextGenerator(seed)
    rng = gen.rng
    values = Values(rng)
    planted = dict.fromkeys(SHARES, 0)
    zh_flags = [rng.random() < 0.1 for _ in range(rows)]
    lengths = [rng.randint(70, 180) if rng.random() < 0.3 else rng.randint(10, 40) for _ in range(rows)]
    en_idx = [i for i in range(rows) if not zh_flags[i]]
    zh_idx = [i for i in range(rows) if zh_flags[i]]
    tokens: list[list[str]] = [[] for _ in range(rows)]
    for idx, zh in ((en_idx, False), (zh_idx, True)):
        made = gen.chinese_rows([lengths[i] * 2 for i in idx]) if zh else gen.english_rows([lengths[i] for i in idx])
        for i, toks in zip(idx, made, strict=True):
            tokens[i] = toks
    kinds = list(SHARES)
    weights = [SHARES[k] for k in kinds]
    texts: list[str] = []
    for i in range(rows):
        zh = zh_flags[i]
        kind = rng.choices(kinds, weights)[0]
        text = gen.text(tokens[i], zh)
        if kind == "exact" and texts:
            base = texts[rng.randrange(len(texts))]
            text = rng.choice([base.upper(), "  " + base.replace(" ", "   "), base + "\n"])
        elif kind == "near" and i and len(tokens[i - 1]) >= 60:
            copy, _ = gen.near_copy(tokens[i - 1], zh_flags[i - 1], 0.85, 0.99)
            text = gen.text(copy, zh_flags[i - 1])
        elif kind == "short":
            text = text[:3] if zh else " ".join(text.split()[:3])
        elif kind == "other_language":
            text = rng.choice(OTHER_LANGUAGES)
        elif kind == "repetitive":
            text = "buy cheap watches now\n" * rng.randint(5, 9)
        elif kind == "spam":
            text = SPAM
        elif kind == "messy":
            text = rng.choice(["ＦＵＬＬ ｗｉｄｔｈ ", "\u200b", "\x07 ", "\t\t"]) + text.replace(
                " ", rng.choice(["  ", " \t"])
            )
        elif kind == "pii":
            value = rng.choice([values.email, values.phone, values.card, values.secret, values.ip])()
            text = text + (f" 联系方式：{value}。" if zh else f" Contact: {value} today.")
        else:
            kind = "plain"
        planted[kind] += 1
        texts.append(text)
    return texts, planted


def content_digest(path: Path) -> str:
    """The platform's content digest of a Parquet file (``DatasetVersion.content_digest``): BLAKE3 over the
    schema header and the canonical encoding of every row, in order."""
    from blake3 import blake3

    from llmops.datasets.snapshot import header, row_encodings

    parquet = pq.ParquetFile(path)
    digest = blake3()
    digest.update(header(parquet.schema_arrow))
    for batch in parquet.iter_batches(batch_size=50_000):
        for encoding in row_encodings(batch):
            digest.update(encoding)
            digest.update(b"\n")
    return str(digest.hexdigest())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def run_once(executor: Any, source: Path, target: Path) -> tuple[float, float, dict[str, Any]]:
    from llmops.datasets.kinds import DatasetKind
    from llmops.datasets.recipe import parse_recipe

    recipe = parse_recipe(RECIPE)
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = executor.run(recipe, source, target, kind=DatasetKind.text)
    return time.perf_counter() - t0, time.process_time() - cpu0, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    parser.add_argument("--name", default="dataset_executors", help="results file name (without .json)")
    args = parser.parse_args(argv)
    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "dataset_executors",
        "date_utc": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(parent),
        "parameters": {
            "rows": args.rows,
            "repeat": args.repeat,
            "seed": args.seed,
            "ray_num_cpus": args.ray_cpus,
            "batch_size": 10_000,
            "recipe": RECIPE,
        },
    }
    from llmops.datasets.executor import InProcessExecutor
    from llmops.datasets.ray_executor import RayExecutor

    with tempfile.TemporaryDirectory(prefix="llmops-bench-exec-", dir=parent) as tmp:
        work = Path(tmp)
        print(f"generating {args.rows:,} rows ...", flush=True)
        t0 = time.perf_counter()
        texts, planted = generate(args.rows, args.seed)
        source = work / "rows.parquet"
        pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), source, row_group_size=50_000)
        result["dataset"] = {
            "rows": len(texts),
            "planted": planted,
            "text_bytes": sum(len(t.encode()) for t in texts),
            "generate_seconds": round(time.perf_counter() - t0, 1),
        }
        del texts
        print(f"  {result['dataset']}", flush=True)

        import ray
        import ray.data  # configures the "ray.data" logger, which the next lines quieten

        t0 = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO line per stage and run otherwise
        result["ray"] = {"version": ray.__version__, "init_seconds": round(time.perf_counter() - t0, 2)}
        executors = {"inprocess": InProcessExecutor(), "ray": RayExecutor()}
        runs: dict[str, dict[str, Any]] = {name: {"seconds": [], "cpu_seconds": []} for name in executors}
        reports: dict[str, dict[str, Any]] = {}
        digests: dict[str, set[str]] = {name: set() for name in executors}
        file_digests: dict[str, set[str]] = {name: set() for name in executors}
        try:
            for rep in range(args.repeat):
                for name, executor in executors.items():
                    target = work / f"out-{name}-{rep}.parquet"
                    print(f"  {name} run {rep + 1} ...", flush=True)
                    seconds, cpu, report = run_once(executor, source, target)
                    runs[name]["seconds"].append(round(seconds, 2))
                    runs[name]["cpu_seconds"].append(round(cpu, 2))
                    reports.setdefault(name, report)
                    if report != reports[name]:
                        raise RuntimeError(f"{name}: the report changed between repetitions")
                    digests[name].add(content_digest(target))
                    file_digests[name].add(sha256_file(target))
                    print(f"    {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s), rows out {report['rows_out']:,}")
                    if rep or name != "inprocess":
                        target.unlink()
        finally:
            ray.shutdown()
        for name, run in runs.items():
            median = statistics.median(run["seconds"])
            run.update(
                {
                    "median_seconds": median,
                    "rows_per_second": round(args.rows / median, 1),
                    "rows_out": reports[name]["rows_out"],
                    "output_content_digest": sorted(digests[name]),
                    "output_file_sha256": sorted(file_digests[name]),
                }
            )
        identical = (
            len(digests["inprocess"]) == 1
            and digests["inprocess"] == digests["ray"]
            and reports["inprocess"] == reports["ray"]
        )
        result["runs"] = runs
        result["identical_output"] = identical
        result["byte_identical_files"] = len(file_digests["inprocess"] | file_digests["ray"]) == 1
        result["ray_over_inprocess_time"] = round(
            runs["ray"]["median_seconds"] / runs["inprocess"]["median_seconds"], 3
        )
        result["report_steps"] = [
            {k: step[k] for k in ("position", "step", "rows_in", "rows_out", "removed", "changed", "counts")}
            for step in reports["inprocess"]["steps"]
        ]
    result["finished_utc"] = utc_now()
    result["load_average_end"] = load_average()
    out = write_result(args.name, result)
    print(json.dumps(result["report_steps"]))
    print(
        f"in-process {runs['inprocess']['median_seconds']:.1f} s, ray {runs['ray']['median_seconds']:.1f} s "
        f"(ray / in-process {result['ray_over_inprocess_time']}), identical output: {identical}, "
        f"byte-identical files: {result['byte_identical_files']}"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")
    raise SystemExit(main())
