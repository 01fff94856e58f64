"""Reading a model directory safely: its files, their names, its format and architecture.

Nothing here executes anything from the model: JSON is parsed, safetensors headers are validated
(``safetensors_file``), and pickle-based weights are refused (they run code when loaded) unless the
caller asked for their conversion, which happens in a separate process with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from llmops.errors import InvalidModel

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
SAFE_SEGMENT = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,255}$")
MAX_FILES = 100_000
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_seq_len")


@dataclass
class ModelDirectory:
    root: Path
    files: dict[str, Path]  # relative POSIX path -> absolute path
    format: str = "unknown"
    architecture: str | None = None
    config: dict[str, Any] | None = None
    context_length: int | None = None
    pickles: list[str] = field(default_factory=list)

    @property
    def safetensors(self) -> list[str]:
        return sorted(p for p in self.files if p.endswith(".safetensors"))


def member_path_problem(rel: str) -> str | None:
    """Why a path inside a model is unsafe, or None. Paths are relative, POSIX, without '..'."""
    if not rel or rel.startswith("/") or rel.startswith("\\") or re.match(r"^[A-Za-z]:", rel):
        return f"{rel[:80]!r} is an absolute path"
    parts = PurePosixPath(rel).parts
    if any(p in ("..", ".") for p in rel.split("/")):
        return f"{rel[:80]!r} contains '.' or '..' segments"
    bad = next((p for p in parts if not SAFE_SEGMENT.match(p)), None)
    if bad is not None:
        return f"{rel[:80]!r} has a control character, a backslash or an over-long segment"
    return None


def check_member_path(rel: str) -> str:
    problem = member_path_problem(rel)
    if problem:
        raise InvalidModel(f"unsafe file name: {problem}", details={"file": rel[:200], "rule": "unsafe_path"})
    return rel


def scan(root: Path) -> ModelDirectory:
    """List a model directory's files; refuse symlinks that leave it and unsafe names."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidModel(f"{root} is not a directory", details={"rule": "not_a_directory"})
    real_root = root.resolve()
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", "__pycache__"))
        for d in list(dirnames):
            full = Path(dirpath) / d
            if full.is_symlink():
                _check_link(full, real_root, root)
                dirnames.remove(d)  # never follow directory links
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            check_member_path(rel)
            if full.is_symlink():
                _check_link(full, real_root, root)
            if not full.is_file():
                continue
            files[rel] = full
            if len(files) > MAX_FILES:
                raise InvalidModel(f"{root} has more than {MAX_FILES} files", details={"rule": "too_many_files"})
    if not files:
        raise InvalidModel(f"{root} is empty", details={"rule": "empty"})
    directory = ModelDirectory(root=root, files=files)
    directory.pickles = sorted(p for p in files if PurePosixPath(p).suffix.lower() in PICKLE_SUFFIXES)
    _detect(directory)
    return directory


def _check_link(path: Path, real_root: Path, root: Path) -> None:
    target = path.resolve()
    if target != real_root and real_root not in target.parents:
        rel = path.relative_to(root).as_posix()
        raise InvalidModel(
            f"{rel!r} is a symbolic link to {target}, outside the model directory",
            details={"file": rel, "rule": "symlink_outside"},
        )


def read_json(directory: ModelDirectory, rel: str) -> Any:
    path = directory.files[rel]
    if path.stat().st_size > 64 * 1024 * 1024:
        raise InvalidModel(
            f"{rel} is larger than 64 MiB; not a config file", details={"file": rel, "rule": "too_large"}
        )
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModel(f"{rel} is not valid JSON: {exc}", details={"file": rel, "rule": "not_json"}) from None


def _detect(d: ModelDirectory) -> None:
    """Format and architecture from the files that name them (never from code in the model)."""
    for rel in d.files:
        if rel.endswith(".json"):
            read_json(d, rel)  # every JSON file must parse: a broken config is refused up front
    config = read_json(d, "config.json") if "config.json" in d.files else None
    if config is not None and not isinstance(config, dict):
        raise InvalidModel("config.json is not a JSON object", details={"file": "config.json", "rule": "not_object"})
    d.config = config
    _check_index(d)
    if "adapter_config.json" in d.files:
        adapter = read_json(d, "adapter_config.json")
        d.format = f"peft-{str(adapter.get('peft_type', 'adapter')).lower()}" if isinstance(adapter, dict) else "peft"
        base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
        d.architecture = (str(adapter.get("task_type")) if isinstance(adapter, dict) else None) or None
        if base:
            d.architecture = f"{d.architecture or 'adapter'} of {base}"
        return
    if "modules.json" in d.files or "config_sentence_transformers.json" in d.files:
        d.format = "sentence-transformers"
    elif config is not None and isinstance(config.get("quantization_config"), dict):
        method = str(config["quantization_config"].get("quant_method", "quantized"))
        d.format = method if method == "compressed-tensors" else f"quantized-{method}"
    elif config is not None:
        d.format = "hf-transformers"
    elif d.safetensors:
        d.format = "safetensors"
    if config is not None:
        archs = config.get("architectures")
        d.architecture = str(archs[0]) if isinstance(archs, list) and archs else config.get("model_type")
        nested = config.get("text_config")
        text: dict[str, Any] = nested if isinstance(nested, dict) else config
        for key in CONTEXT_KEYS:
            value = text.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                d.context_length = value
                break


def _check_index(d: ModelDirectory) -> None:
    for rel in d.files:
        if not rel.endswith(".safetensors.index.json"):
            continue
        index = read_json(d, rel)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise InvalidModel(f"{rel} has no weight_map object", details={"file": rel, "rule": "bad_index"})
        folder = PurePosixPath(rel).parent
        for shard in sorted(set(weight_map.values())):
            if not isinstance(shard, str):
                raise InvalidModel(
                    f"{rel} names a shard that is not a string", details={"file": rel, "rule": "bad_index"}
                )
            problem = member_path_problem(shard)
            if problem:
                raise InvalidModel(
                    f"{rel} names an unsafe shard: {problem}", details={"file": rel, "rule": "unsafe_path"}
                )
            shard_rel = (folder / shard).as_posix() if str(folder) != "." else shard
            if shard_rel not in d.files:
                raise InvalidModel(
                    f"{rel} names shard {shard!r}, which is missing from the directory",
                    details={"file": rel, "rule": "missing_shard", "shard": shard},
                )
