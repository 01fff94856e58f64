"""Byte-level BPE tokenizers, trained with ``tokenizers`` and saved as ``transformers`` tokenizers.

Byte-level BPE (GPT-2, Llama 3, Qwen2) never meets an unknown character: every UTF-8 byte is in the base
alphabet, so Chinese text that the merges have not seen still encodes, one byte per token at worst. The
tokenizer is saved through ``PreTrainedTokenizerFast.save_pretrained`` so that the files are exactly what
``AutoTokenizer.from_pretrained`` expects (``tokenizer.json`` + ``tokenizer_config.json`` with the special tokens
and a ChatML chat template). The only code here is the choice of pieces; the training is the library's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, IM_START, IM_END)

#: ChatML, as Qwen2 ships it: ``<|im_start|>role\ncontent<|im_end|>\n`` per message.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str], out_dir: Path, *, vocab_size: int = 8192, model_max_length: int = 256
) -> Path:
    """Train on ``texts`` and save into ``out_dir``; returns ``out_dir``.

    The special tokens get the first ids (``<|endoftext|>`` = 0, ``<|pad|>`` = 1, ``<|im_start|>`` = 2,
    ``<|im_end|>`` = 3), which the model config copies as its bos/eos/pad ids.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size {vocab_size} is below the 256 byte tokens + {len(SPECIAL_TOKENS)} special ones")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=model_max_length,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return out_dir
