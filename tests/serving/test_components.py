"""Unit tests of the engine's parts: stop-string buffering, sampling filters, cache masks, unsupported configs."""

from __future__ import annotations

import pytest
import torch

from llmops.errors import InvalidModel
from llmops.serving.engines.sampling import RowParams, make_generator, sample
from llmops.serving.engines.slot_cache import check_supported, decode_mask, prefill_mask
from llmops.serving.engines.tokenizer import StopStringBuffer


def test_stop_buffer_holds_back_a_possible_stop_prefix_and_cuts_at_the_stop() -> None:
    buf = StopStringBuffer(["END"])  # up to two characters are held back
    assert buf.append("hello E") is None
    assert buf.take(final=False) == "hello"
    assert buf.append("N") is None
    assert buf.take(final=False) == " "
    assert buf.append("D and more") == "END"
    assert buf.take(final=True) == ""
    assert buf.text == "hello "


def test_stop_buffer_picks_the_earliest_stop_and_flushes_at_the_end() -> None:
    buf = StopStringBuffer(["bc", "abcd"])
    assert buf.append("xabcd") == "abcd"  # it starts first, though "bc" ends first
    assert buf.text == "x"
    plain = StopStringBuffer([])
    plain.append("abc")
    assert plain.take(final=False) == "abc"


def rows(n: int, **kwargs: float) -> list[RowParams]:
    return [
        RowParams(
            temperature=float(kwargs.get("temperature", 1.0)),
            top_p=float(kwargs.get("top_p", 1.0)),
            top_k=int(kwargs.get("top_k", 0)),
            generator=make_generator(i),
        )
        for i in range(n)
    ]


def test_top_k_and_top_p_only_sample_inside_the_nucleus() -> None:
    logits = torch.tensor([[4.0, 3.0, 2.0, -1.0, -2.0]]).repeat(200, 1)
    top_k = sample(logits, rows(200, top_k=2)).token_ids
    assert set(top_k) == {0, 1}
    # softmax of the logits: 0.66, 0.24, 0.09, ...; top_p=0.8 keeps the first two
    top_p = sample(logits, rows(200, top_p=0.8)).token_ids
    assert set(top_p) == {0, 1}
    greedy = sample(logits[:3], rows(3, temperature=0.0)).token_ids
    assert greedy == [0, 0, 0]


def test_sampling_follows_the_distribution_and_the_seed() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(4000, 1)
    counts = torch.bincount(torch.tensor(sample(logits, rows(4000)).token_ids), minlength=3).float() / 4000
    assert torch.allclose(counts, torch.tensor([0.5, 0.3, 0.2]), atol=0.04)
    again = sample(logits[:10], rows(10)).token_ids
    assert again == sample(logits[:10], rows(10)).token_ids


def test_logprobs_are_raw_whatever_the_temperature() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    params = rows(1, temperature=0.5)
    params[0].logprobs = 2
    result = sample(logits, params)
    lp = result.logprobs[0]
    raw = logits.log_softmax(-1)[0]
    assert lp is not None and lp.top_ids == (0, 1)
    assert lp.logprob == pytest.approx(float(raw[result.token_ids[0]]))


def test_masks_hide_the_future_and_other_rows_tails() -> None:
    mask = decode_mask(torch.tensor([2, 0]), torch.float32)
    assert mask.shape == (2, 1, 1, 3)
    assert (mask[0, 0, 0] == 0).all() and mask[1, 0, 0, 0] == 0 and (mask[1, 0, 0, 1:] < -1e30).all()
    causal = prefill_mask(2, 3, torch.float32)
    assert causal.shape == (1, 1, 3, 5)
    visible = causal[0, 0] == 0
    assert visible.tolist() == [[True] * 3 + [False] * 2, [True] * 4 + [False], [True] * 5]


def test_unsupported_attention_is_refused_by_name() -> None:
    from transformers import MistralConfig, Qwen2Config

    with pytest.raises(InvalidModel) as caught:
        check_supported(Qwen2Config(use_sliding_window=True, sliding_window=64, max_window_layers=0), 128)
    assert "sliding_attention" in caught.value.message
    with pytest.raises(InvalidModel) as caught:
        check_supported(MistralConfig(sliding_window=64), 128)
    assert caught.value.details["feature"].startswith("sliding window")
    check_supported(MistralConfig(sliding_window=4096), 4096)  # the window never binds
    check_supported(Qwen2Config(), 128)
