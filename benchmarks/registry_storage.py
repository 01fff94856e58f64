"""Bytes a model family costs in the registry against whole-file storage of the same directories, in one run.

What is measured, and why
-------------------------
The issue's goal: "A model family (base, a fine-tune of it, a LoRA merge of it and an int8 copy) stored by
the registry versus whole-file storage (what MLflow does): the registry stores the family in at most 60 % of
the whole-file bytes." The registry stores each distinct tensor once across all versions (dedup by BLAKE3
digest), compresses tensors with zstd when a 1 MiB sample says that pays, and stores a tensor of a version
imported with ``--base`` as ``zstd(tensor XOR base tensor)`` when that is smaller. How much that saves
depends on the weights, so the family is built with the real libraries, at a size that is realistic per
tensor while still quick on 2 CPU cores:

``base``      a Llama (``--hidden`` 1024, ``--layers`` 6, ``--intermediate`` 2816, vocabulary 32000, GQA
              16/8 heads), random-initialised by transformers and saved with ``save_pretrained`` in the dtype
              under test: bf16 (as published LLMs ship, the headline) and fp32. About 136 M parameters.
``finetune``  the base after ``--ft-steps`` real AdamW steps (lr ``--ft-lr``) on random tokens over all
              parameters, trained in fp32 and saved back in the base's dtype
              (``tests/registry/factory.make_continued_training``).
``merge``     a peft LoRA adapter (r ``--lora-r``, alpha 2r, on q_proj/v_proj) after one real optimizer step
              at lr ``--lora-lr``, merged with ``merge_and_unload`` (``factory.make_lora_adapter`` and
              ``make_lora_merge``): only the q/v projections differ from the base.
``int8``      a compressed-tensors INT8 W8A8 copy, int8 per-channel weights for every Linear but lm_head
              (``factory.make_int8_copy``, the llm-compressor path without calibration).

Every member gets the same tokenizer files, config, generation config and model card a Hub directory has.

``whole-file`` (the baseline) is the sum of the file sizes of the four directories: what a registry that keeps
each version's files as they are (MLflow's artifact store) holds. ``registry`` is measured two ways in a fresh
store (SQLite + local blob store) per dtype, importing the base plainly and the three others with
``--base <base>:1`` and derivation ``finetune`` / ``merge`` / ``quantize``:

- the sum of ``ModelVersion.physical_bytes``: the tensor bytes each import added to the store;
- ``platform.store.stats().bytes``: every blob in the store after the four imports (tensors, safetensors
  headers, small files such as tokenizer.json, manifests). This is the headline, since it is what the disk holds.

Per member the JSON records logical bytes, stored bytes, the tensor counts (deduplicated / XOR delta / zstd /
raw) and, for the float members, how many elements differ from the base and by how much (relative L2), since
the delta size follows from that. Allocated disk blocks (``st_blocks``) are recorded too. Each pull of every
member is checked byte for byte against its source directory.

Storage bytes are deterministic for a given build (fixed seeds), so there are no repetitions; import times are
recorded once each for information (no goal).

Run:  ``.venv/bin/python benchmarks/registry_storage.py [--dtypes bf16,fp32] [--dir DIR]``
Writes ``benchmarks/results/registry_storage.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))  # tests.registry.factory builds the family with the real libraries

import torch  # noqa: E402
from _common import load_average, machine_info, utc_now, write_result  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tests.registry import factory  # noqa: E402

from llmops.platform import Platform  # noqa: E402
from llmops.security.actor import local_admin  # noqa: E402
from llmops.settings import Settings  # noqa: E402

GOAL_RATIO = 0.6
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MEMBERS = ("base", "finetune", "merge", "int8")
DERIVATION = {"base": "import", "finetune": "finetune", "merge": "merge", "int8": "quantize"}


def make_base(out: Path, *, dtype: torch.dtype, hidden: int, layers: int, intermediate: int, vocab: int) -> Path:
    """A random-initialised Llama saved as the Hub ships it (``save_pretrained``), with tokenizer and card."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    factory.make_tokenizer(out)  # the tokenizer files are small; their vocabulary does not have to match
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(factory.BASE_SEED)
        model: Any = LlamaForCausalLM(config)
    model = model.to(dtype)
    model.save_pretrained(str(out))
    generation = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=1)  # type: ignore[no-untyped-call]
    generation.save_pretrained(str(out))
    factory.write_model_card(
        out, title="bench-llama", pipeline_tag="text-generation", description="Random-initialised Llama (benchmark)."
    )
    return out


def build_family(work: Path, dtype: torch.dtype, args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, float]]:
    """The four directories of the family, and how long each took to build (seconds)."""
    dirs: dict[str, Path] = {}
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    dirs["base"] = make_base(
        work / "base",
        dtype=dtype,
        hidden=args.hidden,
        layers=args.layers,
        intermediate=args.intermediate,
        vocab=args.vocab,
    )
    took["base"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dirs["finetune"] = factory.make_continued_training(
        dirs["base"], work / "finetune", steps=args.ft_steps, lr=args.ft_lr
    )
    took["finetune"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    adapter = factory.make_lora_adapter(
        dirs["base"], work / "adapter", r=args.lora_r, alpha=2 * args.lora_r, lr=args.lora_lr
    )
    dirs["merge"] = factory.make_lora_merge(dirs["base"], adapter, work / "merge")
    took["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dirs["int8"] = factory.make_int8_copy(dirs["base"], work / "int8")
    took["int8"] = time.perf_counter() - t0
    return dirs, took


def dir_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def dir_bytes(path: Path) -> tuple[int, int]:
    """(sum of file sizes, allocated bytes on disk from ``st_blocks``)."""
    size = blocks = 0
    for p in dir_files(path):
        st = p.stat()
        size += st.st_size
        blocks += st.st_blocks * 512
    return size, blocks


def store_allocated(root: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def tensors_of(path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(path.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                out[key] = fh.get_tensor(key)
    return out


def change_vs_base(base: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How much a member differs from the base, over tensors of the same name, shape and dtype."""
    same_shape = elements = changed = identical_tensors = 0
    num = den = 0.0
    dtypes: dict[str, int] = {}
    for name, t in other.items():
        dtypes[str(t.dtype).removeprefix("torch.")] = dtypes.get(str(t.dtype).removeprefix("torch."), 0) + t.numel()
        b = base.get(name)
        if b is None or b.shape != t.shape or b.dtype != t.dtype or not t.is_floating_point():
            continue
        same_shape += 1
        diff = t != b
        n_changed = int(diff.sum())
        elements += t.numel()
        changed += n_changed
        identical_tensors += n_changed == 0
        d = t.double() - b.double()
        num += float((d * d).sum())
        den += float((b.double() ** 2).sum())
    return {
        "tensors": len(other),
        "comparable_tensors": same_shape,
        "byte_identical_tensors": identical_tensors,
        "elements_compared": elements,
        "elements_changed_fraction": round(changed / elements, 4) if elements else None,
        "relative_l2": float(f"{(num / den) ** 0.5:.3g}") if den else None,
        "elements_by_dtype": dtypes,
    }


def sha256_tree(path: Path) -> dict[str, str]:
    out = {}
    for p in dir_files(path):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
        out[p.relative_to(path).as_posix()] = h.hexdigest()
    return out


def measure_family(work: Path, label: str, args: argparse.Namespace) -> dict[str, Any]:
    dtype = DTYPES[label]
    print(f"[{label}] building the family ...", flush=True)
    dirs, build_seconds = build_family(work / "family", dtype, args)
    base_tensors = tensors_of(dirs["base"])
    members: dict[str, Any] = {}
    for member in MEMBERS:
        size, blocks = dir_bytes(dirs[member])
        members[member] = {
            "files": {p.relative_to(dirs[member]).as_posix(): p.stat().st_size for p in dir_files(dirs[member])},
            "whole_file_bytes": size,
            "whole_file_allocated_bytes": blocks,
            "build_seconds": round(build_seconds[member], 2),
        }
        if member != "base":
            members[member]["change_vs_base"] = change_vs_base(base_tensors, tensors_of(dirs[member]))
        else:
            members[member]["change_vs_base"] = change_vs_base({}, base_tensors)
    del base_tensors

    platform = Platform(Settings(home=work / "home"))
    admin = local_admin(via="cli")
    try:
        base_ref = f"{label}-base:1"
        for member in MEMBERS:
            print(f"[{label}] importing {member} ...", flush=True)
            t0 = time.perf_counter()
            report = platform.registry.import_model(
                admin,
                dirs[member],
                name=f"{label}-{member}",
                base=None if member == "base" else base_ref,
                derivation=DERIVATION[member],
            )
            seconds = time.perf_counter() - t0
            members[member].update(
                {
                    "ref": report.version.ref,
                    "derivation": report.version.derivation,
                    "logical_bytes": report.logical_bytes,
                    "stored_bytes": report.stored_bytes,  # == ModelVersion.physical_bytes
                    "stored_fraction": round(report.stored_bytes / report.logical_bytes, 4),
                    "import_seconds": round(seconds, 2),
                    "tensor_counts": {
                        "total": report.tensors,
                        "deduplicated": report.deduplicated_tensors,
                        "xor_delta": report.delta_tensors,
                        "zstd": report.compressed_tensors,
                        "raw": report.raw_tensors,
                    },
                }
            )
            print(
                f"  {member:8s} logical {report.logical_bytes / 1e6:8.1f} MB"
                f"  stored {report.stored_bytes / 1e6:8.1f} MB"
                f"  dedup {report.deduplicated_tensors} delta {report.delta_tensors}"
                f" zstd {report.compressed_tensors} raw {report.raw_tensors}  ({seconds:.1f} s)",
                flush=True,
            )
        stats = platform.store.stats()
        store_root = work / "home" / "blobs"
        allocated = store_allocated(store_root)
        # Every member must come back byte for byte: storage savings are worth nothing otherwise.
        pulls_identical = {}
        for member in MEMBERS:
            dest = work / "pulled" / member
            platform.registry.pull(f"{label}-{member}:1", dest)
            pulls_identical[member] = sha256_tree(dest) == sha256_tree(dirs[member])
    finally:
        platform.close()

    whole = sum(m["whole_file_bytes"] for m in members.values())
    whole_alloc = sum(m["whole_file_allocated_bytes"] for m in members.values())
    physical = sum(m["stored_bytes"] for m in members.values())
    return {
        "dtype": label,
        "members": members,
        "whole_file_bytes": whole,
        "whole_file_allocated_bytes": whole_alloc,
        "registry_physical_bytes_sum": physical,
        "store_stats": {
            "blobs": stats.blobs,
            "bytes": stats.bytes,
            "referenced_bytes": stats.referenced_bytes,
            "unreferenced_bytes": stats.unreferenced_bytes,
            "allocated_bytes": allocated,
        },
        "non_tensor_store_bytes": stats.bytes - physical,
        "ratio_store_bytes": round(stats.bytes / whole, 4),
        "ratio_physical_sum": round(physical / whole, 4),
        "ratio_allocated": round(allocated / whole_alloc, 4),
        "goal_met": stats.bytes / whole <= GOAL_RATIO,
        "pulls_byte_identical": pulls_identical,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dtypes", default="bf16,fp32", help="comma-separated: bf16 (headline), fp32")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--ft-steps", type=int, default=3, help="AdamW steps of the fine-tune")
    parser.add_argument("--ft-lr", type=float, default=1e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-lr", type=float, default=1e-2, help="one step; large enough to move most weights")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory")
    parser.add_argument("--name", default="registry_storage", help="results file name (without .json)")
    args = parser.parse_args(argv)
    labels = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for label in labels:
        if label not in DTYPES:
            parser.error(f"unknown dtype {label!r}; one of {sorted(DTYPES)}")
    torch.set_num_threads(os.cpu_count() or 1)

    parent = args.dir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "registry_storage",
        "date_utc": utc_now(),
        "load_average_start": load_average(),
        "machine": machine_info(parent),
        "parameters": {
            "model": "LlamaForCausalLM",
            "hidden": args.hidden,
            "layers": args.layers,
            "intermediate": args.intermediate,
            "vocab": args.vocab,
            "heads": 16,
            "kv_heads": 8,
            "finetune": {"optimizer": "AdamW", "steps": args.ft_steps, "lr": args.ft_lr, "batch": "2 x 16 tokens"},
            "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "targets": ["q_proj", "v_proj"], "steps": 1},
            "lora_lr": args.lora_lr,
            "int8": "compressed-tensors int-quantized W8A8, per-channel weights, lm_head kept",
            "units": "bytes; MB = 1e6 bytes",
        },
        "goal": {"ratio": GOAL_RATIO, "compares": "store bytes after importing the family / sum of the file sizes"},
        "families": {},
    }
    for label in labels:
        with tempfile.TemporaryDirectory(prefix=f"llmops-bench-storage-{label}-", dir=parent) as tmp:
            fam = measure_family(Path(tmp), label, args)
        result["families"][label] = fam
        print(
            f"[{label}] whole-file {fam['whole_file_bytes'] / 1e6:.1f} MB; registry store "
            f"{fam['store_stats']['bytes'] / 1e6:.1f} MB (tensors {fam['registry_physical_bytes_sum'] / 1e6:.1f} MB); "
            f"ratio {fam['ratio_store_bytes']} (goal <= {GOAL_RATIO}); pulls identical {fam['pulls_byte_identical']}",
            flush=True,
        )
    headline = result["families"].get("bf16") or next(iter(result["families"].values()))
    result["goal"]["dtype"] = headline["dtype"]
    result["goal"]["ratio_measured"] = headline["ratio_store_bytes"]
    result["goal"]["met"] = headline["goal_met"]
    result["finished_utc"] = utc_now()
    result["load_average_end"] = load_average()
    out = write_result(args.name, result)
    print(json.dumps(result["goal"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
