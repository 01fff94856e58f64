"""Registry import and export throughput of a model of >= 1 GiB against ``cp -r`` of the same files, in one run.

What is measured, and why
-------------------------
The issue's goals: "import and export throughput of a model of at least 1 GiB against a plain ``cp`` of the
same files in the same run (goal >= 0.5 of cp)" and "a 2 GiB model imports with peak RSS under 600 MB".

An import is much more than a copy. ``RegistryService.import_model`` scans the directory, validates every
safetensors header, BLAKE3-hashes every file (manifest schema 2; schema 1 recorded SHA-256) and every
tensor, estimates whether zstd pays from a 1 MiB sample, stores each new tensor (zstd-compressed, XOR
delta, or raw) as a blob that is fsynced before it is published, and records the version in one database
transaction. An export (``RegistryService.pull``)
decodes every tensor (raw ones by kernel copy), verifies its BLAKE3 digest (the file digest is not
recomputed: the verified pieces determine every byte), fsyncs each file and renames the directory into place.

The model is generated, not trained: a Llama-shaped directory (``config.json``, ``generation_config.json``,
``model-0000i-of-0000n.safetensors`` shards of at most ``--shard-mib`` and ``model.safetensors.index.json``)
whose tensors have real Llama shapes (hidden 2048, intermediate 5632, vocabulary 32000, GQA 32/4 heads, the
TinyLlama-1.1B layout) filled with ``randn * 0.02`` in bf16 (``--dtype``), as many layers as it takes to
reach ``--size-mib`` (default 1100 MiB, which takes 11 layers: 102 tensors in 3 shards, 1.23 GB = 1.15 GiB;
the JSON records the layout). Random weights
with a weight-like distribution compress with zstd about as real ones do (the exponent bits carry little
entropy), so the store takes its zstd path as it would for a real checkpoint.

Operations, interleaved, ``--repeat`` times (median reported), in two cache regimes when the page cache can
be dropped (root): ``cold`` (``sync; echo 3 > /proc/sys/vm/drop_caches`` before each timed operation) and
``warm`` (inputs read through first). Dirty pages are flushed (``os.sync``, untimed) after every operation.

``cp``         ``cp -r SRC DST`` in a subprocess: the issue's baseline (no durability).
``cp_sync``    the same, then ``fsync`` of every copied file and of the directory: the durable baseline,
               since the registry fsyncs every blob it stores and every file it exports.
``import``     ``platform.registry.import_model`` into a fresh, empty store (new home, SQLite + local blobs;
               created untimed). A re-import into the same store would be a no-op.
``export``     ``platform.registry.pull(ref, DST)`` into a fresh directory.
``import_os`` / ``export_os``  the same with ``LLMOPS_STORE_FSYNC=false`` and ``pull --no-fsync``: write-back
               left to the operating system, as ``cp`` leaves it; the like-for-like pair for plain ``cp``
               (durable import and export pair with ``cp_sync``).

Each operation also records its CPU seconds (``getrusage`` of this process and its children, before and
after): on a machine shared with CPU-heavy jobs the wall-clock rates swing by 2x between repetitions, the
CPU cost much less. Two floors are measured once per run, untimed by the comparison: the disk alone
(``disk``: ``dd`` of 1200 MiB of zeros with ``conv=fsync`` and with ``oflag=direct``) and the hashes an
import must compute over every byte (``hash_floor``: SHA-256, and BLAKE3 on one thread and on all cores,
over the model in the page cache). Schema 1 recorded every file's SHA-256, and one file's SHA-256 is
sequential, so on a CPU without SHA extensions its single-core speed bounded the import's rate; schema 2
records BLAKE3, and the SHA-256 floor stays in the JSON for comparison with earlier rows.

Peak memory: the import and the export of the 1 GiB model, and the import of a ``--rss-size-mib`` (default
2048) model, each run once more in a child process that reports its ``VmHWM`` (peak resident set, from
``/proc/self/status``; it starts afresh at ``exec``). ``getrusage().ru_maxrss`` is not the measure: on Linux
a child inherits its parent's high-water mark through fork + exec, so it reports the benchmark process's own
peak (torch plus the generated tensors). A child that opens the platform and does nothing gives the floor.

Run:  ``.venv/bin/python benchmarks/registry_throughput.py [--size-mib 1100] [--repeat 3] [--rss-size-mib 2048]``
Writes ``benchmarks/results/registry_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cache_modes, drop_caches, load_average, machine_info, read_through, summarize, utc_now, write_result  # noqa: E402

MIB = 1024 * 1024
GOAL_RATIO = 0.5
RSS_GOAL_BYTES = 600 * 10**6
OPERATIONS = ("cp", "cp_sync", "import", "export", "import_os", "export_os")

# TinyLlama-1.1B's layout: the tensor sizes of a real 1 B-class checkpoint.
LLAMA_SHAPE = {"hidden": 2048, "intermediate": 5632, "vocab": 32000, "heads": 32, "kv_heads": 4}


# --- the model directory ---------------------------------------------------------------------------------
def llama_tensor_shapes(layers: int, shape: dict[str, int] = LLAMA_SHAPE) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every tensor of a Llama checkpoint in the order transformers saves them."""
    h, inter, vocab = shape["hidden"], shape["intermediate"], shape["vocab"]
    kv = h // shape["heads"] * shape["kv_heads"]
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,)),
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "post_attention_layernorm.weight", (h,)),
            (p + "mlp.gate_proj.weight", (inter, h)),
            (p + "mlp.up_proj.weight", (inter, h)),
            (p + "mlp.down_proj.weight", (h, inter)),
        ]
    out += [("model.norm.weight", (h,)), ("lm_head.weight", (vocab, h))]
    return out


def layers_for(size_bytes: int, element_size: int, shape: dict[str, int] = LLAMA_SHAPE) -> int:
    """The fewest layers whose checkpoint is at least ``size_bytes``."""
    layers = 1
    while True:
        total = sum(_numel(s) for _, s in llama_tensor_shapes(layers, shape)) * element_size
        if total >= size_bytes:
            return layers
        layers += 1


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def make_model_dir(
    out: Path,
    size_bytes: int,
    *,
    dtype: str = "bf16",
    shard_bytes: int = 512 * MIB,
    seed: int = 0,
    shape: dict[str, int] = LLAMA_SHAPE,
) -> dict[str, Any]:
    """Write a Hugging Face-style Llama directory of at least ``size_bytes`` of random weight-like tensors.

    Shards are written with ``safetensors.torch.save_file`` (``metadata={"format": "pt"}``, as transformers
    does), split like ``save_pretrained(max_shard_size=...)``, with the index file; the config is loadable by
    ``transformers.AutoModelForCausalLM.from_pretrained``. Returns a description for the results JSON.
    """
    import torch
    from safetensors.torch import save_file

    torch_dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[dtype]
    element = torch.tensor([], dtype=torch_dtype).element_size()
    layers = layers_for(size_bytes, element, shape)
    names = llama_tensor_shapes(layers, shape)
    gen = torch.Generator().manual_seed(seed)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    filled = 0
    for name, s in names:
        nbytes = _numel(s) * element
        if shards[-1] and filled + nbytes > shard_bytes:
            shards.append([])
            filled = 0
        shards[-1].append((name, s))
        filled += nbytes
    out.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name, s in shard:
            if name.endswith("norm.weight"):
                t = torch.ones(s, dtype=torch_dtype)
            else:
                t = (torch.randn(s, generator=gen) * 0.02).to(torch_dtype)
            tensors[name] = t
            weight_map[name] = file
            total += t.numel() * element
        save_file(tensors, str(out / file), metadata={"format": "pt"})
        del tensors
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape["hidden"],
        "intermediate_size": shape["intermediate"],
        "num_hidden_layers": layers,
        "num_attention_heads": shape["heads"],
        "num_key_value_heads": shape["kv_heads"],
        "vocab_size": shape["vocab"],
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}[dtype],
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2) + "\n")
    fsync_tree(out)
    files = sorted(p for p in out.iterdir() if p.is_file())
    return {
        "layout": "Llama " + ", ".join(f"{k} {v}" for k, v in shape.items()),
        "layers": layers,
        "dtype": dtype,
        "tensors": len(names),
        "shards": len(shards),
        "largest_tensor_bytes": max(_numel(s) for _, s in names) * element,
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }


# --- shared helpers (model_load.py uses them too) --------------------------------------------------------


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and every directory (what a durable copy needs)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def open_platform(home: Path, *, fsync: bool = True) -> Any:
    from llmops.platform import Platform
    from llmops.settings import Settings

    return Platform(Settings(home=home, store_fsync=fsync))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- child processes for peak RSS --------------------------------------------------------------------------
def _peak_memory() -> dict[str, int]:
    status = Path("/proc/self/status").read_text()
    out = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    # Not a peak of this program: Linux carries the forking parent's high-water mark across fork + exec, so
    # a child of the (torch-loaded) benchmark process reports the parent's peak here. Kept to show that.
    out["ru_maxrss_inherited"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def child_main(mode: str, src: str, home: str, dest: str) -> int:
    """Run one operation and print its peak memory as JSON (``mode``: noop, import, export)."""
    from llmops.security.actor import local_admin

    platform = open_platform(Path(home))
    before = _peak_memory()
    t0 = time.perf_counter()
    if mode == "import":
        platform.registry.import_model(local_admin(via="cli"), Path(src), name="bench")
    elif mode == "export":
        platform.registry.pull("bench:1", Path(dest))
    elif mode != "noop":
        raise SystemExit(f"unknown child mode {mode!r}")
    seconds = time.perf_counter() - t0
    platform.close()
    print(json.dumps({"mode": mode, "seconds": round(seconds, 3), "before_op": before, "peak": _peak_memory()}))
    return 0


def run_child(mode: str, src: Path, home: Path, dest: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(src), str(home), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed: {proc.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


# --- the timed comparison ------------------------------------------------------------------------------------
def measure(work: Path, src: Path, size: int, repeat: int, cold: bool) -> dict[str, Any]:
    from llmops.security.actor import local_admin

    admin = local_admin(via="cli")
    times: dict[str, list[float]] = {k: [] for k in OPERATIONS}
    cpu: dict[str, list[float]] = {k: [] for k in times}  # CPU seconds of this process and its children
    dst = work / "dst"
    reports: list[dict[str, Any]] = []

    def prepare(warm_paths: list[Path]) -> None:
        if cold:
            if not drop_caches():
                raise RuntimeError("cannot drop caches")
        else:
            for p in warm_paths:
                read_through(p)

    def timed(name: str, op: Callable[[], None], warm_paths: list[Path]) -> None:
        prepare(warm_paths)
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        op()
        times[name].append(time.perf_counter() - t0)
        cpu[name].append(_cpu_seconds() - c0)
        os.sync()  # untimed: keep this operation's writeback out of the next one's timing

    def do_cp() -> None:
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)

    def do_cp_sync() -> None:
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        fsync_tree(dst)

    for i in range(repeat):
        timed("cp", do_cp, [src])
        rmtree(dst)
        timed("cp_sync", do_cp_sync, [src])
        rmtree(dst)
        for durable, suffix in ((True, ""), (False, "_os")):
            home = work / f"home-{i}{suffix}"
            platform = open_platform(home, fsync=durable)  # a fresh, empty store: untimed
            try:
                holder: dict[str, Any] = {}

                def do_import() -> None:
                    holder["report"] = platform.registry.import_model(admin, src, name="bench")  # noqa: B023

                timed(f"import{suffix}", do_import, [src])
                report = holder["report"]
                if durable:
                    reports.append(
                        {
                            "stored_bytes": report.stored_bytes,
                            "logical_bytes": report.logical_bytes,
                            "zstd": report.compressed_tensors,
                            "raw": report.raw_tensors,
                            "deduplicated": report.deduplicated_tensors,
                        }
                    )
                blobs_dir = home / "blobs"

                def do_export() -> None:
                    platform.registry.pull("bench:1", dst, durable=durable)  # noqa: B023

                timed(f"export{suffix}", do_export, [blobs_dir])
                assert tree_bytes(dst) == size
                rmtree(dst)
            finally:
                platform.close()
                rmtree(home)
                os.sync()
    runs = {name: summarize(secs, size / 1e6) for name, secs in times.items()}
    for name, secs in cpu.items():
        runs[name]["cpu_seconds"] = [round(c, 2) for c in secs]
        runs[name]["median_cpu_seconds"] = round(statistics.median(secs), 2)
    runs["import_report"] = reports[0]
    return runs


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def hash_floor(src: Path) -> dict[str, Any]:
    """Single-thread speed of the hashes an import must compute over every byte, over the model in memory.

    An import records each file's SHA-256 (one file's SHA-256 is sequential) and each tensor's BLAKE3; on a CPU
    without SHA extensions SHA-256 alone bounds the import's throughput whatever the disk does.
    """
    import hashlib

    from blake3 import blake3

    files = sorted(p for p in src.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    read_through(src)
    out: dict[str, Any] = {"bytes": total}
    for name, new in (
        ("sha256", hashlib.sha256),
        ("blake3_1_thread", lambda: blake3(max_threads=1)),
        ("blake3_auto", lambda: blake3(max_threads=blake3.AUTO)),
    ):
        buf = bytearray(8 * MIB)
        c0, t0 = time.process_time(), time.perf_counter()
        for p in files:
            h = new()
            with open(p, "rb", buffering=0) as fh:
                while n := fh.readinto(buf):
                    h.update(memoryview(buf)[:n])
            h.hexdigest()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = {"MBps": round(total / 1e6 / wall, 1), "cpu_seconds": round(cpu, 2), "seconds": round(wall, 2)}
    return out


def disk_write(work: Path, mib: int = 1200) -> dict[str, Any]:
    """The disk alone: ``dd`` of zeros with ``conv=fsync`` (through the page cache) and ``oflag=direct``."""
    out: dict[str, Any] = {"bytes": mib * MIB}
    target = work / "dd.bin"
    for name, flag in (("dd_conv_fsync", "conv=fsync"), ("dd_oflag_direct", "oflag=direct")):
        os.sync()
        t0 = time.perf_counter()
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={target}", "bs=8M", f"count={mib // 8}", flag],
            check=True,
            capture_output=True,
        )
        out[name] = round(mib * MIB / 1e6 / (time.perf_counter() - t0), 1)
        target.unlink()
    return out


def ratios(r: dict[str, Any], stat: str = "median_rate") -> dict[str, float]:
    def rate(name: str) -> float:
        return float(r[name][stat])

    return {
        "import_vs_cp": round(rate("import") / rate("cp"), 3),
        "import_vs_cp_sync": round(rate("import") / rate("cp_sync"), 3),
        "export_vs_cp": round(rate("export") / rate("cp"), 3),
        "export_vs_cp_sync": round(rate("export") / rate("cp_sync"), 3),
        "import_os_vs_cp": round(rate("import_os") / rate("cp"), 3),
        "export_os_vs_cp": round(rate("export_os") / rate("cp"), 3),
    }


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(*sys.argv[2:6])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=1100, help="model size, at least (MiB)")
    parser.add_argument("--dtype", choices=("bf16", "fp32", "fp16"), default="bf16")
    parser.add_argument("--shard-mib", type=int, default=512, help="largest shard (MiB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", choices=("both", "cold", "warm"), default="both")
    parser.add_argument("--rss-size-mib", type=int, default=2048, help="size of the model for the RSS goal; 0 skips")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory on the filesystem under test")
    parser.add_argument("--name", default="registry_throughput", help="results file name (without .json)")
    args = parser.parse_args(argv)

    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    modes, can_drop = cache_modes(args.cache)
    result: dict[str, Any] = {
        "benchmark": "registry_throughput",
        "date_utc": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(parent),
        "parameters": {
            "size_mib_requested": args.size_mib,
            "dtype": args.dtype,
            "shard_mib": args.shard_mib,
            "repeat": args.repeat,
            "dir": str(parent),
            "units": "MB/s = 1e6 bytes per second of model bytes; medians over repetitions",
        },
        "page_cache_dropped": can_drop,
        "goal": {
            "ratio": GOAL_RATIO,
            "compares": "registry import / export vs cp -r of the same files",
            "rss_bytes": RSS_GOAL_BYTES,
        },
    }
    with tempfile.TemporaryDirectory(prefix="llmops-bench-regtp-", dir=parent) as tmp:
        work = Path(tmp)
        src = work / "model"
        print(f"generating a {args.size_mib} MiB {args.dtype} model in {src} ...", flush=True)
        result["model"] = make_model_dir(src, args.size_mib * MIB, dtype=args.dtype, shard_bytes=args.shard_mib * MIB)
        size = tree_bytes(src)
        print(f"model: {result['model']}", flush=True)
        result["disk"] = disk_write(work)
        result["hash_floor"] = hash_floor(src)
        print(f"disk: {result['disk']}\nhash floor: {result['hash_floor']}", flush=True)
        local: dict[str, Any] = {}
        for mode in modes:
            print(f"{mode} cache ...", flush=True)
            runs = measure(work, src, size, args.repeat, cold=(mode == "cold"))
            local[mode] = {**runs, "ratios": ratios(runs), "ratios_best": ratios(runs, "best_rate")}
            for name in OPERATIONS:
                print(
                    f"  {name:8s} {runs[name]['median_rate']:8.1f} MB/s  {runs[name]['rates']}"
                    f"  CPU {runs[name]['median_cpu_seconds']} s",
                    flush=True,
                )
            print(f"  ratios (medians) {local[mode]['ratios']}", flush=True)
            print(f"  ratios (best)    {local[mode]['ratios_best']}", flush=True)
        result["runs"] = local

        print("peak RSS in child processes ...", flush=True)
        memory: dict[str, Any] = {}
        home = work / "rss-home"
        memory["noop"] = run_child("noop", src, work / "rss-noop-home", work / "unused")
        memory["import_model"] = run_child("import", src, home, work / "unused")
        memory["export_model"] = run_child("export", src, home, work / "rss-export")
        rmtree(work / "rss-export")
        rmtree(home)
        if args.rss_size_mib:
            rmtree(src)  # room for the larger model
            big = work / "model-big"
            print(f"generating a {args.rss_size_mib} MiB model for the RSS goal ...", flush=True)
            memory["big_model"] = make_model_dir(
                big, args.rss_size_mib * MIB, dtype=args.dtype, shard_bytes=args.shard_mib * MIB, seed=1
            )
            drop_caches()
            memory["import_big"] = run_child("import", big, home, work / "unused")
            memory["import_big"]["model_bytes"] = tree_bytes(big)
            drop_caches()
            memory["export_big"] = run_child("export", big, home, work / "rss-export")
        result["memory"] = memory
        for key, value in memory.items():
            if "peak" in value:
                print(f"  {key:12s} VmHWM {value['peak']['VmHWM'] / 1e6:7.1f} MB  ({value['seconds']} s)", flush=True)

    headline = local["cold"] if "cold" in local else local["warm"]
    result["goal"]["regime"] = "cold" if "cold" in local else "warm"
    result["goal"]["import_ratio"] = headline["ratios"]["import_vs_cp"]
    result["goal"]["export_ratio"] = headline["ratios"]["export_vs_cp"]
    result["goal"]["import_met"] = headline["ratios"]["import_vs_cp"] >= GOAL_RATIO
    result["goal"]["export_met"] = headline["ratios"]["export_vs_cp"] >= GOAL_RATIO
    result["goal"]["import_ratio_vs_cp_sync"] = headline["ratios"]["import_vs_cp_sync"]
    result["goal"]["export_ratio_vs_cp_sync"] = headline["ratios"]["export_vs_cp_sync"]
    # like for like: write-back left to the OS on both sides
    result["goal"]["import_os_ratio"] = headline["ratios"]["import_os_vs_cp"]
    result["goal"]["export_os_ratio"] = headline["ratios"]["export_os_vs_cp"]
    result["goal"]["import_os_met"] = headline["ratios"]["import_os_vs_cp"] >= GOAL_RATIO
    result["goal"]["export_os_met"] = headline["ratios"]["export_os_vs_cp"] >= GOAL_RATIO
    if "import_big" in memory:
        peak = memory["import_big"]["peak"]["VmHWM"]
        result["goal"]["rss_import_big_bytes"] = peak
        result["goal"]["rss_met"] = peak < RSS_GOAL_BYTES
    result["finished_utc"] = utc_now()
    result["load_average_end"] = load_average()
    out = write_result(args.name, result)
    print(f"goal: {result['goal']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
