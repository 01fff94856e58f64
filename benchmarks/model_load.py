"""Cold start: materialize-and-load of a registry version (cached and uncached) against loading the files directly.

What is measured, and why
-------------------------
The issue's goals: "materialize-and-load of a cached version <= 1.2x loading the same files straight from
local disk; an uncached one <= 2x". Serving gets a model through ``platform.model_cache.materialize(ref)``:
when the version is in the local cache (keyed by manifest digest) that is a manifest read and a size check of
every file; when it is not, it is a full verified pull from the blob store (decode every tensor, check its
BLAKE3 digest and every file's SHA-256, fsync, rename into the cache) before the model can be loaded.

The model is a generated Llama-shaped directory (``registry_throughput.make_model_dir``: TinyLlama-1.1B tensor
shapes, random weight-like bf16 values, ``--size-mib`` default 400, so 2 layers and 438 MB), imported
once into a fresh store. Three ways to get a loaded model, interleaved, ``--repeat`` times (median reported):

``direct``    load the original directory's files.
``cached``    ``materialize(ref)`` on a version already in the cache, then load the returned directory.
``uncached``  the cache entry is removed (untimed), then ``materialize(ref)`` (the pull) and load.

Two loaders: ``load_file`` (``safetensors.torch.load_file`` of every shard: the bytes, with nothing else on
top) and ``from_pretrained`` (``transformers.AutoModelForCausalLM.from_pretrained(dir, dtype=bfloat16)``,
what a serving process does). Both map the files and read pages lazily, so each load is followed by reading
one element of every 4 KiB page of every tensor (``touch``): a load here means the weights are in memory.
Two cache regimes when the page cache can be dropped (root): ``cold`` (``sync;
echo 3 > /proc/sys/vm/drop_caches`` before each timed operation: files come from the disk) and ``warm`` (the
inputs of the operation read through first: the original files, the cache entry, or the store's blobs).
``os.sync`` (untimed) after every operation keeps one operation's writeback out of the next one's time.

Ratios are medians of the registry path over the median of ``direct`` in the same regime, same loader.

Run:  ``.venv/bin/python benchmarks/model_load.py [--size-mib 400] [--repeat 5] [--loaders load_file,from_pretrained]``
Writes ``benchmarks/results/model_load.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import cache_modes, drop_caches, load_average, machine_info, read_through, summarize, utc_now, write_result  # noqa: E402
from registry_throughput import MIB, make_model_dir, open_platform  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from llmops.security.actor import local_admin  # noqa: E402

CACHED_GOAL = 1.2
UNCACHED_GOAL = 2.0
CASES = ("direct", "cached", "uncached")


def touch(tensors: Iterable[torch.Tensor]) -> int:
    """Read one element of every 4 KiB page of every tensor; returns the tensor bytes.

    safetensors 0.8's ``load_file`` and transformers 5's ``from_pretrained`` map the file and return tensors
    whose pages are read only when first used (a warm ``load_file`` of 438 MB takes about 1 ms). Touching
    every page makes every byte come off the disk (or the page cache) as a first forward pass would, so the
    comparison is between getting the weights into memory, not between two ``mmap`` calls.
    """
    total = 0
    checksum = 0.0
    for t in tensors:
        flat = t.detach().reshape(-1)
        step = max(1, 4096 // t.element_size())
        checksum += float(flat[::step].float().sum())
        total += t.numel() * t.element_size()
    assert checksum == checksum  # NaN would mean garbage weights
    return total


def load_safetensors(path: Path) -> int:
    """Every shard with ``safetensors.torch.load_file``, every page touched; returns the tensor bytes."""
    total = 0
    for shard in sorted(path.glob("*.safetensors")):
        tensors = load_file(str(shard))
        total += touch(tensors.values())
        del tensors
    return total


def load_transformers(path: Path) -> int:
    """``AutoModelForCausalLM.from_pretrained`` (bf16), every page of every parameter touched."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.bfloat16)
    total = touch(model.parameters())
    del model
    return total


LOADERS: dict[str, Callable[[Path], int]] = {"load_file": load_safetensors, "from_pretrained": load_transformers}


def measure(
    src: Path, platform: Any, ref: str, loader: Callable[[Path], int], repeat: int, cold: bool
) -> dict[str, Any]:
    cache = platform.model_cache
    entry = cache.root / platform.registry.manifest(ref).digest
    blobs_dir = Path(platform.settings.home) / "blobs"
    times: dict[str, list[float]] = {k: [] for k in CASES}
    materialize_seconds: dict[str, list[float]] = {"cached": [], "uncached": []}
    expected = loader(src)  # also imports what the loader needs, untimed

    def prepare(warm: Path) -> None:
        if cold:
            if not drop_caches():
                raise RuntimeError("cannot drop caches")
        else:
            read_through(warm)

    def run(case: str) -> None:
        if case == "uncached":
            shutil.rmtree(entry, ignore_errors=True)
            os.sync()
        elif not entry.exists():
            cache.materialize(ref)
        prepare({"direct": src, "cached": entry, "uncached": blobs_dir}[case])
        t0 = time.perf_counter()
        if case == "direct":
            loaded = loader(src)
        else:
            path = cache.materialize(ref)
            materialize_seconds[case].append(time.perf_counter() - t0)
            loaded = loader(path)
        times[case].append(time.perf_counter() - t0)
        os.sync()
        assert loaded == expected, (loaded, expected)

    for _ in range(repeat):
        for case in CASES:
            run(case)
    size = sum(p.stat().st_size for p in src.iterdir() if p.is_file())
    out: dict[str, Any] = {case: summarize(secs, size / 1e6) for case, secs in times.items()}
    for case, secs in materialize_seconds.items():
        out[case]["materialize_seconds"] = [round(s, 4) for s in secs]
    direct = out["direct"]["median_seconds"]
    out["ratios"] = {
        "cached_vs_direct": round(out["cached"]["median_seconds"] / direct, 3),
        "uncached_vs_direct": round(out["uncached"]["median_seconds"] / direct, 3),
    }
    best_direct = min(times["direct"])
    out["ratios_best"] = {
        "cached_vs_direct": round(min(times["cached"]) / best_direct, 3),
        "uncached_vs_direct": round(min(times["uncached"]) / best_direct, 3),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=400, help="model size, at least (MiB)")
    parser.add_argument("--dtype", choices=("bf16", "fp32", "fp16"), default="bf16")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cache", choices=("both", "cold", "warm"), default="both")
    parser.add_argument("--loaders", default="load_file,from_pretrained", help=f"comma-separated: {', '.join(LOADERS)}")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory on the filesystem under test")
    parser.add_argument("--name", default="model_load", help="results file name (without .json)")
    args = parser.parse_args(argv)
    loaders = [name.strip() for name in args.loaders.split(",") if name.strip()]
    for name in loaders:
        if name not in LOADERS:
            parser.error(f"unknown loader {name!r}; one of {', '.join(LOADERS)}")

    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    modes, can_drop = cache_modes(args.cache)
    result: dict[str, Any] = {
        "benchmark": "model_load",
        "date_utc": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(parent),
        "parameters": {
            "size_mib_requested": args.size_mib,
            "dtype": args.dtype,
            "repeat": args.repeat,
            "loaders": loaders,
            "torch_threads": torch.get_num_threads(),
            "dir": str(parent),
            "units": "seconds per load; MB/s = 1e6 model bytes per second; ratios are median time over direct's",
        },
        "page_cache_dropped": can_drop,
        "goal": {"cached_ratio": CACHED_GOAL, "uncached_ratio": UNCACHED_GOAL},
    }
    with tempfile.TemporaryDirectory(prefix="llmops-bench-load-", dir=parent) as tmp:
        work = Path(tmp)
        src = work / "model"
        print(f"generating a {args.size_mib} MiB {args.dtype} model ...", flush=True)
        result["model"] = make_model_dir(src, args.size_mib * MIB, dtype=args.dtype)
        print(f"model: {result['model']}", flush=True)
        platform = open_platform(work / "home")
        try:
            report = platform.registry.import_model(local_admin(via="cli"), src, name="bench")
            ref = report.version.ref
            result["import"] = {"stored_bytes": report.stored_bytes, "zstd": report.compressed_tensors}
            runs: dict[str, Any] = {}
            for loader in loaders:
                for mode in modes:
                    print(f"{loader}, {mode} cache ...", flush=True)
                    r = measure(src, platform, ref, LOADERS[loader], args.repeat, cold=(mode == "cold"))
                    runs.setdefault(loader, {})[mode] = r
                    for case in CASES:
                        extra = f"  materialize {r[case].get('materialize_seconds', '')}" if case != "direct" else ""
                        print(
                            f"  {case:8s} {r[case]['median_seconds']:7.3f} s  {r[case]['seconds']}{extra}", flush=True
                        )
                    print(f"  ratios (medians) {r['ratios']}  (best) {r['ratios_best']}", flush=True)
        finally:
            platform.close()
    result["runs"] = runs
    headline_loader = loaders[0]
    regime = "cold" if "cold" in modes else "warm"
    head = runs[headline_loader][regime]["ratios"]
    result["goal"].update(
        {
            "loader": headline_loader,
            "regime": regime,
            "cached_measured": head["cached_vs_direct"],
            "uncached_measured": head["uncached_vs_direct"],
            "cached_met": head["cached_vs_direct"] <= CACHED_GOAL,
            "uncached_met": head["uncached_vs_direct"] <= UNCACHED_GOAL,
        }
    )
    result["finished_utc"] = utc_now()
    result["load_average_end"] = load_average()
    out = write_result(args.name, result)
    print(f"goal: {result['goal']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
