"""Training text: documents from dataset versions (or JSONL files), the held-out split, and token packing.

Sources are dataset references (``reference-corpus-en``, ``name:3``) read through ``platform.datasets`` so that
the run records them as inputs, or paths to JSONL files with a ``text`` field for when no dataset is imported
(quick experiments; nothing goes into lineage then).

The validation split is chosen by content, not by position: documents are ordered by the SHA-256 of their text
and taken in that order until each source's share (``validation_fraction`` of its characters) is met. The same
corpus therefore always yields the same split whatever the row order, and every training document whose text
equals a held-out one is dropped so that duplicated fortunes cannot leak the validation set into training.

Packing follows GPT-style pretraining: every document is encoded and followed by ``<|endoftext|>``, the
documents are concatenated into one token stream, and the stream is cut into blocks of ``context + 1`` tokens
overlapping by one, so that each token after the first is predicted exactly once per epoch. The same stream
layout is used for the validation perplexity and the n-gram baselines, which makes the three numbers
comparable token for token.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmops.errors import InvalidInput

if TYPE_CHECKING:
    from llmops.platform import Platform

TokenArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class Document:
    text: str
    source: str  # the dataset reference or file it came from


@dataclass
class Corpus:
    train: list[Document]
    validation: list[Document]
    dataset_refs: list[str]  # resolved dataset version references, for lineage


def is_path_source(source: str) -> bool:
    return source.endswith((".jsonl", ".json")) or "/" in source


def read_jsonl(path: Path) -> Iterator[str]:
    """The ``text`` field of every line of a JSONL file; a bad line is an error naming the file and line."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}, line {number}: not JSON ({exc.msg})") from None
            text = row.get("text") if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise InvalidInput(f"{path}, line {number}: needs a string field 'text'")
            yield text


def load_documents(sources: Sequence[str], platform: Platform | None) -> tuple[list[Document], list[str]]:
    """All documents of ``sources`` in order, and the resolved dataset references (``name:N``)."""
    documents: list[Document] = []
    refs: list[str] = []
    for source in sources:
        if is_path_source(source):
            path = Path(source)
            if not path.is_file():
                raise InvalidInput(f"training data {source!r}: no such file (give a dataset name or a JSONL path)")
            documents.extend(Document(t, source) for t in read_jsonl(path) if t.strip())
            continue
        datasets = getattr(platform, "datasets", None) if platform is not None else None
        if datasets is None:
            raise InvalidInput(f"training data {source!r} is a dataset reference, but no dataset service is available")
        version = datasets.get(source)
        ref = str(getattr(version, "ref", source))
        refs.append(ref)
        documents.extend(Document(t, ref) for t in datasets.texts(ref) if t.strip())
    if not documents:
        raise InvalidInput(f"training data {list(sources)} holds no text")
    return documents, refs


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def split(documents: Sequence[Document], validation_fraction: float) -> tuple[list[Document], list[Document]]:
    """Hold out about ``validation_fraction`` of each source's characters, chosen by text digest (module doc)."""
    by_source: dict[str, list[Document]] = {}
    for doc in documents:
        by_source.setdefault(doc.source, []).append(doc)
    held: set[str] = set()
    validation: list[Document] = []
    for source in sorted(by_source):
        budget = 0
        validation_chars = validation_fraction * sum(len(d.text) for d in by_source[source])
        for digest, doc in sorted((_digest(d.text), d) for d in by_source[source]):
            if budget >= validation_chars:
                break
            if digest in held:
                continue
            held.add(digest)
            validation.append(doc)
            budget += len(doc.text)
    train = [d for d in documents if _digest(d.text) not in held]
    if not train:
        raise InvalidInput("the validation split takes every document; lower data.validation_fraction")
    return train, validation


def load_corpus(sources: Sequence[str], platform: Platform | None, *, validation_fraction: float) -> Corpus:
    documents, refs = load_documents(sources, platform)
    train, validation = split(documents, validation_fraction)
    return Corpus(train=train, validation=validation, dataset_refs=refs)


def shuffled(documents: Sequence[Document], seed: int) -> list[Document]:
    """A seeded shuffle, so that languages and sources are interleaved through training."""
    out = list(documents)
    random.Random(seed).shuffle(out)
    return out


def encode_stream(texts: Sequence[str], tokenizer_file: Path, eos_id: int) -> TokenArray:
    """``<eos> doc1 <eos> doc2 <eos> …`` as one int64 array (the leading eos gives doc1 a context)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    pieces: list[TokenArray] = [np.array([eos_id], dtype=np.int64)]
    for start in range(0, len(texts), 1024):
        for enc in tokenizer.encode_batch(list(texts[start : start + 1024]), add_special_tokens=False):
            pieces.append(np.array([*enc.ids, eos_id], dtype=np.int64))
    return np.concatenate(pieces)


def num_blocks(stream_length: int, context: int) -> int:
    """How many blocks of ``context + 1`` tokens (overlapping by one) cover the stream; the last may be short."""
    return max(0, -(-(stream_length - 1) // context))


def block(stream: TokenArray, index: int, context: int) -> TokenArray:
    return stream[index * context : index * context + context + 1]


def full_blocks(stream_length: int, context: int) -> int:
    """Blocks of exactly ``context + 1`` tokens: what training samples from."""
    return max(0, (stream_length - 1) // context)


def save_tokens(path: Path, tokens: TokenArray) -> None:
    """Atomically, as ``.npy`` (``np.load(allow_pickle=False)`` reads it back)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, tokens.astype(np.uint16 if tokens.max(initial=0) < 65536 else np.int64), allow_pickle=False)
    tmp.replace(path)


def load_tokens(path: Path) -> TokenArray:
    return np.asarray(np.load(path, allow_pickle=False), dtype=np.int64)
