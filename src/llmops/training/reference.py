"""The reference pretraining recipe: a byte-level BPE tokenizer and a small Llama trained on the reference corpus.

A torchtune-style recipe: one typed config (``ReferenceConfig``, loaded from YAML with unknown keys refused), and
a plain function that runs ``setup → train → finish`` with no framework around the loop. The model is
``transformers.LlamaForCausalLM`` built from a config (nothing downloaded); everything else is torch.

What the recipe adds on top of a nanoGPT loop, and why:

- The run is tracked (``platform.start_run(kind="train")``): loss, learning rate, tokens per second, validation
  loss and perplexity; the dataset versions are recorded as inputs and the registered model as output, so the
  registry's lineage of ``reference-lm`` names both its run and its data.
- Checkpoints (``llmops.training.checkpoint``) hold model, optimizer, scheduler, RNG and data position, and are
  written atomically; ``resume=True`` continues from the newest complete one after a kill. The data order is a
  pure function of (seed, epoch), so a resumed run sees exactly the batches the killed one would have seen.
- The prepared data (tokenizer, token streams, validation split) is written once into the output directory and
  reused on resume: a resume never retrains the tokenizer or re-reads the corpus.
- At the end the model is measured against unigram and bigram baselines on the same validation stream
  (``llmops.training.baselines``), written as a self-contained model directory (weights, configs, tokenizer,
  ``validation.jsonl``, ``metrics.json``, a model card) and registered.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.errors import Conflict, InvalidInput
from llmops.modelloading import LOAD_LOCK
from llmops.security.actor import Actor, local_admin
from llmops.training import checkpoint, corpus
from llmops.training.baselines import KN_DISCOUNT, baselines
from llmops.training.tokenizer import EOS_TOKEN, PAD_TOKEN, train_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM

    from llmops.platform import Platform

Progress = Callable[[int, int], None]
#: Config fields that change what a step computes: a resume must keep them.
RESULT_FIELDS = ("model", "data", "optim", "batch_size", "seed")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    vocab_size: int = Field(
        default=8192, ge=262, description="Requested BPE vocabulary (the model uses what training got)."
    )
    hidden_size: int = Field(default=256, ge=8)
    intermediate_size: int = Field(default=768, ge=8)
    num_layers: int = Field(default=4, ge=1)
    num_heads: int = Field(default=8, ge=1)
    num_kv_heads: int = Field(default=4, ge=1)
    context_length: int = Field(default=256, ge=8, description="Training block length = max_position_embeddings.")
    tie_embeddings: bool = True
    rope_theta: float = Field(default=10000.0, gt=0)


class DataSpec(_Strict):
    sources: list[str] = Field(
        default_factory=lambda: ["reference-corpus-en", "reference-corpus-zh"],
        min_length=1,
        description="Dataset references, or JSONL files with a 'text' field (not recorded in lineage).",
    )
    validation_fraction: float = Field(
        default=0.008, gt=0, lt=1, description="Share of each source's characters held out for validation."
    )


class OptimSpec(_Strict):
    lr: float = Field(default=2e-3, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="Cosine decays to lr * min_lr_ratio.")
    warmup_steps: int = Field(default=50, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, gt=0, lt=1)
    beta2: float = Field(default=0.95, gt=0, lt=1)
    grad_clip: float = Field(default=1.0, gt=0)


class ReferenceConfig(_Strict):
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    data: DataSpec = Field(default_factory=lambda: DataSpec())
    optim: OptimSpec = Field(default_factory=lambda: OptimSpec())
    steps: int = Field(default=900, ge=1)
    batch_size: int = Field(default=8, ge=1)
    seed: int = 0
    threads: int = Field(default=2, ge=1, description="torch intra-op threads.")
    log_every: int = Field(default=10, ge=1)
    eval_every: int = Field(default=150, ge=1)
    checkpoint_every: int = Field(default=50, ge=1)
    keep_checkpoints: int = Field(default=2, ge=1)
    run_name: str = "reference-lm"
    register_as: str | None = Field(default="reference-lm", description="Registry name; null: do not register.")


def load_config(path: Path | None, **overrides: Any) -> ReferenceConfig:
    """The config of ``path`` (YAML) with ``overrides`` (None values ignored); a bad key names itself."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInput(f"config {path}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInput(f"config {path}: expected a mapping at the top level")
        data = loaded or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ReferenceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(
            f"config {path or '(defaults)'}: {problems}", details={"fields": [list(e["loc"]) for e in exc.errors()]}
        ) from None


@dataclass
class TrainResult:
    run_id: str
    out_dir: Path
    model_dir: Path
    start_step: int
    steps: int
    tokens_seen: int
    train_seconds: float
    metrics: dict[str, Any]
    model_ref: str | None


# --- setup -------------------------------------------------------------------------------------------------
@dataclass
class Prepared:
    tokenizer_dir: Path
    train: corpus.TokenArray
    validation: corpus.TokenArray
    info: dict[str, Any]


def prepare_data(config: ReferenceConfig, out_dir: Path, platform: Platform | None) -> Prepared:
    """Tokenizer, token streams and the validation split, built once into ``out_dir/data`` and reused."""
    data_dir = out_dir / "data"
    marker = data_dir / "prepared.json"
    if marker.is_file():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("data") != config.data.model_dump(mode="json"):
            raise Conflict(
                f"{out_dir} holds data prepared with {info.get('data')}; use another --out for different data"
            )
        return Prepared(
            data_dir / "tokenizer",
            corpus.load_tokens(data_dir / "train.npy"),
            corpus.load_tokens(data_dir / "validation.npy"),
            info,
        )
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a preparation that did not finish: start it again
    data_dir.mkdir(parents=True)
    loaded = corpus.load_corpus(config.data.sources, platform, validation_fraction=config.data.validation_fraction)
    train_docs = corpus.shuffled(loaded.train, config.seed)
    tokenizer_dir = train_tokenizer(
        (d.text for d in train_docs),
        data_dir / "tokenizer",
        vocab_size=config.model.vocab_size,
        model_max_length=config.model.context_length,
    )
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    eos_id = _token_id(tokenizer_file, EOS_TOKEN)
    train = corpus.encode_stream([d.text for d in train_docs], tokenizer_file, eos_id)
    validation = corpus.encode_stream([d.text for d in loaded.validation], tokenizer_file, eos_id)
    corpus.save_tokens(data_dir / "train.npy", train)
    corpus.save_tokens(data_dir / "validation.npy", validation)
    with open(data_dir / "validation.jsonl", "w", encoding="utf-8") as fh:
        for doc in loaded.validation:
            fh.write(json.dumps({"text": doc.text, "source": doc.source}, ensure_ascii=False) + "\n")
    info = {
        "data": config.data.model_dump(mode="json"),
        "dataset_refs": loaded.dataset_refs,
        "train_documents": len(loaded.train),
        "validation_documents": len(loaded.validation),
        "train_tokens": int(len(train)),
        "validation_tokens": int(len(validation)),
    }
    marker.write_text(json.dumps(info, indent=2), encoding="utf-8")  # last: marks the preparation complete
    return Prepared(tokenizer_dir, train, validation, info)


def _token_id(tokenizer_file: Path, token: str) -> int:
    from tokenizers import Tokenizer

    token_id = Tokenizer.from_file(str(tokenizer_file)).token_to_id(token)
    if token_id is None:  # pragma: no cover - train_tokenizer always adds it
        raise InvalidInput(f"{tokenizer_file} has no {token}")
    return int(token_id)


def build_model(spec: ModelSpec, vocab_size: int, eos_id: int, pad_id: int) -> LlamaForCausalLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    if spec.hidden_size % spec.num_heads or spec.num_heads % spec.num_kv_heads:
        raise InvalidInput("model: hidden_size must divide by num_heads, and num_heads by num_kv_heads")
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.context_length,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_dropout=0.0,
    )
    with LOAD_LOCK:  # no concurrent load may have switched weight initialisation off (llmops.modelloading)
        return LlamaForCausalLM(config)


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: torch.nn.Module, spec: OptimSpec) -> torch.optim.AdamW:
    import torch

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec.lr,
        betas=(spec.beta1, spec.beta2),
    )


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --- train -------------------------------------------------------------------------------------------------
def batch_indices(sample: int, batch_size: int, blocks: int, seed: int) -> list[int]:
    """Block indices of samples ``sample … sample + batch_size - 1``: a fresh permutation of the blocks per epoch."""
    import torch

    out: list[int] = []
    cache: dict[int, list[int]] = {}
    for s in range(sample, sample + batch_size):
        epoch, offset = divmod(s, blocks)
        if epoch not in cache:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(blocks, generator=g).tolist()
        out.append(cache[epoch][offset])
    return out


def evaluate(model: torch.nn.Module, stream: corpus.TokenArray, context: int, batch_size: int = 16) -> float:
    """Mean negative log-likelihood (nats) of every token of ``stream`` after the first."""
    import torch

    n = corpus.num_blocks(len(stream), context)
    full = [corpus.block(stream, i, context) for i in range(corpus.full_blocks(len(stream), context))]
    batches = [np.stack(full[i : i + batch_size]) for i in range(0, len(full), batch_size)]
    if n > len(full):  # the short last block goes alone
        batches.append(corpus.block(stream, n - 1, context)[None, :])
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            nll, k = _nll(model, torch.from_numpy(batch))
            total, count = total + nll, count + k
    model.train(was_training)
    return total / count


def _nll(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, int]:
    import torch.nn.functional as F

    logits = model(input_ids=x[:, :-1]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1), reduction="sum")
    return float(loss), int(x[:, 1:].numel())


def train_reference(
    platform: Platform,
    config: ReferenceConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    actor: Actor | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Run the recipe into ``out_dir``; see the module docstring. Returns what it trained and registered."""
    import torch
    import torch.nn.functional as F

    actor = actor or local_admin(via="python")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    found = checkpoint.latest(ckpt_dir)
    if found is not None and not resume:
        raise Conflict(
            f"{out_dir} already holds a checkpoint (step {found.step}); pass --resume to continue it, "
            "or choose another --out"
        )
    if found is not None:
        saved = ReferenceConfig.model_validate(found.state["config"])
        changed = [k for k in RESULT_FIELDS if getattr(saved, k) != getattr(config, k)]
        if changed:
            raise Conflict(
                f"the checkpoint in {ckpt_dir} was made with different {', '.join(changed)}; resume with the "
                "config it was made with (steps, logging and checkpoint intervals may change)"
            )
        if found.step > config.steps:
            raise InvalidInput(f"the checkpoint in {ckpt_dir} is at step {found.step}, past --steps {config.steps}")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    prepared = prepare_data(config, out_dir, platform)
    tokenizer_file = prepared.tokenizer_dir / "tokenizer.json"
    eos_id, pad_id = _token_id(tokenizer_file, EOS_TOKEN), _token_id(tokenizer_file, PAD_TOKEN)
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_file(str(tokenizer_file)).get_vocab_size()
    model = build_model(config.model, vocab_size, eos_id, pad_id)
    optimizer = _optimizer(model, config.optim)
    context = config.model.context_length
    blocks = corpus.full_blocks(len(prepared.train), context)
    if blocks == 0:
        raise InvalidInput(f"the training data holds fewer than {context + 1} tokens; add data or lower the context")

    start_step, tokens_seen, train_seconds, previous_run = 0, 0, 0.0, None
    if found is not None:
        checkpoint.restore(found, model, optimizer)
        start_step = found.step
        tokens_seen = int(found.state["tokens_seen"])
        train_seconds = float(found.state["train_seconds"])
        previous_run = found.state.get("run_id")
    parameters = sum(p.numel() for p in model.parameters())
    params = {
        **_flatten(config.model_dump()),
        "parameters": parameters,
        "vocab_size_trained": vocab_size,
        "train_tokens": prepared.info["train_tokens"],
        "validation_tokens": prepared.info["validation_tokens"],
        "start_step": start_step,
    }
    tags = {"recipe": "reference"}
    if previous_run:
        tags["resumed_from_run"] = str(previous_run)
    run_ctx = platform.start_run(kind="train", name=config.run_name, params=params, tags=tags, actor=actor)
    with run_ctx as run:
        for ref in prepared.info["dataset_refs"]:
            run.add_input("dataset_version", ref)
        model.train()
        interval_loss, interval_steps, interval_tokens, interval_seconds = 0.0, 0, 0, 0.0
        for step in range(start_step, config.steps):
            began = time.perf_counter()
            lr = config.optim.lr * lr_factor(
                step, warmup=config.optim.warmup_steps, total=config.steps, min_ratio=config.optim.min_lr_ratio
            )
            _set_lr(optimizer, lr)
            index = batch_indices(step * config.batch_size, config.batch_size, blocks, config.seed)
            x = torch.from_numpy(np.stack([corpus.block(prepared.train, i, context) for i in index]))
            logits = model(input_ids=x[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            loss_value = loss.item()
            elapsed = time.perf_counter() - began  # compute only: evaluation and checkpoints are not counted
            done = step + 1
            tokens = int(x[:, 1:].numel())
            tokens_seen += tokens
            train_seconds += elapsed
            interval_loss, interval_steps = interval_loss + loss_value, interval_steps + 1
            interval_tokens, interval_seconds = interval_tokens + tokens, interval_seconds + elapsed
            if done % config.log_every == 0 or done == config.steps:
                run.log_metrics(
                    {
                        "train/loss": interval_loss / interval_steps,
                        "train/lr": lr,
                        "train/tokens_per_second": interval_tokens / max(interval_seconds, 1e-9),
                        "train/tokens": tokens_seen,
                    },
                    step=done,
                )
                interval_loss, interval_steps, interval_tokens, interval_seconds = 0.0, 0, 0, 0.0
            if done % config.eval_every == 0 and done != config.steps:
                val = evaluate(model, prepared.validation, context)
                run.log_metrics({"val/loss": val, "val/perplexity": math.exp(val)}, step=done)
            if done % config.checkpoint_every == 0 or done == config.steps:
                state = {
                    "config": config.model_dump(mode="json"),
                    "tokens_seen": tokens_seen,
                    "train_seconds": train_seconds,
                    "data_position": {
                        "samples_seen": done * config.batch_size,
                        "epoch": done * config.batch_size // blocks,
                        "block_in_epoch": done * config.batch_size % blocks,
                    },
                    "lr": lr,
                    "run_id": run.id,
                }
                checkpoint.save(
                    ckpt_dir, step=done, model=model, optimizer=optimizer, state=state, keep=config.keep_checkpoints
                )
            if progress is not None:
                progress(done, config.steps)
        result = _finish(platform, actor, run, config, out_dir, model, prepared, vocab_size, parameters)
        result.update(tokens_seen=tokens_seen, train_seconds=round(train_seconds, 1))
        run.log_dict(result, "metrics.json")
        model_dir = out_dir / "model"
        (model_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        model_ref = None
        if config.register_as:
            report = platform.registry.import_model(
                actor,
                model_dir,
                name=config.register_as,
                run_id=run.id,
                description="Reference Llama trained on the reference corpus (English + Chinese)",
                tags={"recipe": "reference", "lang": "en,zh"},
            )
            model_ref = report.version.ref
    return TrainResult(
        run_id=run.id,
        out_dir=out_dir,
        model_dir=out_dir / "model",
        start_step=start_step,
        steps=config.steps,
        tokens_seen=tokens_seen,
        train_seconds=train_seconds,
        metrics=result,
        model_ref=model_ref,
    )


# --- finish ------------------------------------------------------------------------------------------------
def _finish(
    platform: Platform,
    actor: Actor,
    run: Any,
    config: ReferenceConfig,
    out_dir: Path,
    model: LlamaForCausalLM,
    prepared: Prepared,
    vocab_size: int,
    parameters: int,
) -> dict[str, Any]:
    """Final evaluation, baselines, and the self-contained model directory ``out_dir/model``."""
    from transformers import GenerationConfig

    context = config.model.context_length
    val = evaluate(model, prepared.validation, context)
    base = baselines(prepared.train, prepared.validation, vocab_size)
    metrics = {
        "validation_perplexity": math.exp(val),
        "validation_loss": val,
        "unigram_perplexity": base.unigram_perplexity,
        "bigram_perplexity": base.bigram_perplexity,
        "predicted_tokens": base.predicted_tokens,
        "unigram_smoothing": "add-one (Laplace)",
        "bigram_smoothing": f"interpolated Kneser-Ney, discount {KN_DISCOUNT}, add-one continuation",
        "evaluation": f"validation.jsonl: '<|endoftext|>' + each text + '<|endoftext|>', concatenated, "
        f"blocks of {context} predicted tokens",
        "parameters": parameters,
        "vocab_size": vocab_size,
        "context_length": context,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "train_tokens_in_corpus": prepared.info["train_tokens"],
        "datasets": prepared.info["dataset_refs"] or config.data.sources,
        "run_id": run.id,
    }
    run.log_metrics(
        {
            "val/loss": val,
            "val/perplexity": metrics["validation_perplexity"],
            "baseline/unigram_perplexity": base.unigram_perplexity,
            "baseline/bigram_perplexity": base.bigram_perplexity,
        },
        step=config.steps,
    )
    model_dir = out_dir / "model"
    tmp = out_dir / ".tmp-model"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
        max_new_tokens=64,
        do_sample=False,
    ).save_pretrained(str(tmp))
    for item in sorted(prepared.tokenizer_dir.iterdir()):
        shutil.copyfile(item, tmp / item.name)
    shutil.copyfile(out_dir / "data" / "validation.jsonl", tmp / "validation.jsonl")
    _write_card(tmp / "README.md", metrics)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    tmp.rename(model_dir)
    return metrics


def _write_card(path: Path, metrics: dict[str, Any]) -> None:
    lines = [
        "---",
        "license: other",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "language:",
        "- en",
        "- zh",
        "tags:",
        "- llmops-reference",
        "---",
        "",
        "# reference-lm",
        "",
        f"A {metrics['parameters'] / 1e6:.1f}M-parameter Llama trained by `llmops train reference` on the reference "
        "corpus (English and Chinese text from Debian packages; sources and licences in assets/PROVENANCE.md).",
        "It exists to give the platform a real model to serve, evaluate and compress; it is not a useful assistant.",
        "",
        "| validation set | perplexity |",
        "|---|---|",
        f"| this model | {metrics['validation_perplexity']:.2f} |",
        f"| bigram ({metrics['bigram_smoothing']}) | {metrics['bigram_perplexity']:.2f} |",
        f"| unigram ({metrics['unigram_smoothing']}) | {metrics['unigram_perplexity']:.2f} |",
        "",
        f"Token-level perplexity over {metrics['predicted_tokens']} tokens of `validation.jsonl`.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = ",".join(map(str, value))
        else:
            out[f"{prefix}{key}"] = value
    return out
