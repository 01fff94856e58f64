from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.filters import Filter, FilterConfig, failure
from llmops.datasets.transforms.quality import (
    count_tokens,
    duplicate_line_fractions,
    duplicate_ngram_char_fraction,
    symbol_ratio,
    tokens,
    top_ngram_char_fraction,
)

from .conftest import chat_table, report, text_table

EN = "The weather is lovely today and we are going for a long walk in the park."
ZH = "今天天气很好，我们一起去公园散步吧，顺便买点水果回家。"
JA = "今日はとても良い天気なので、公園を散歩しましょう。"
RU = "Сегодня прекрасная погода, и мы пойдём гулять в парк."
KO = "오늘은 날씨가 좋아서 공원에 산책하러 갑니다."


def config(**kwargs: object) -> FilterConfig:
    return FilterConfig.model_validate(kwargs)


def test_tokens_are_words_for_latin_and_characters_for_cjk() -> None:
    assert tokens("Hello, world!") == ["Hello,", "world!"]
    assert count_tokens("我爱北京") == 4
    assert tokens("用Python写代码") == ["用", "Python", "写", "代", "码"]
    assert count_tokens("") == 0


def test_length_in_chars_and_tokens() -> None:
    assert failure("short", config(length={"min": 10})) == ("length", "5 chars < min 10")
    assert failure("x" * 50, config(length={"max": 20}))[0] == "length"  # type: ignore[index]
    assert failure("我爱北京天安门", config(length={"unit": "tokens", "min": 5})) is None
    assert failure("I love Beijing", config(length={"unit": "tokens", "min": 5})) == (
        "length",
        "3 tokens < min 5",
    )


def test_language_allow_deny_and_confidence() -> None:
    keep_en_zh = config(language={"allow": ["en", "zh"]})
    assert failure(EN, keep_en_zh) is None and failure(ZH, keep_en_zh) is None
    for text in (JA, RU):
        assert failure(text, keep_en_zh)[0] == "language"  # type: ignore[index]
    assert failure(RU, config(language={"deny": ["ru"]}))[0] == "language"  # type: ignore[index]
    assert failure(EN, config(language={"deny": ["ru"]})) is None
    # Below the confidence bar a row is "und", which an allow list can name explicitly.
    strict = config(language={"allow": ["en"], "min_confidence": 1.0})
    assert "language und" in failure(EN, strict)[1]  # type: ignore[index]
    assert failure("ok", config(language={"allow": ["en", "und"]})) is None


def test_script_filter_with_cjk_alias() -> None:
    cjk = config(script={"allow": ["CJK"]})
    assert [failure(t, cjk) is None for t in (EN, ZH, JA, RU, KO)] == [False, True, True, False, True]
    no_cyrillic = config(script={"deny": ["Cyrillic"]})
    assert failure(RU, no_cyrillic) == ("script", "script Cyrillic in deny ['Cyrillic']")
    with pytest.raises(ValidationError, match="unknown script 'Klingon'"):
        config(script={"allow": ["Klingon"]})


def test_repetition_measures_follow_gopher() -> None:
    assert duplicate_line_fractions("a\nb\na\na") == (0.5, 0.5)
    words = ["the", "cat", "sat", "on", "the", "mat", "the", "cat", "sat", "on", "the", "mat"]
    assert top_ngram_char_fraction(words, 2) > 0.2
    # the second "the cat sat on the" (14 of 34 characters) repeats; "mat" after it is not inside a repeated 5-gram
    assert duplicate_ngram_char_fraction(words, 5) == pytest.approx(14 / 34)
    assert duplicate_ngram_char_fraction(EN.split(), 5) == 0.0


def test_repetition_filter_removes_spam_keeps_prose() -> None:
    rep = config(repetition={})
    assert failure(EN, rep) is None and failure(ZH, rep) is None
    assert failure("buy now\nbuy now\nbuy now\nbest price", rep)[0] == "repetition"  # type: ignore[index]
    assert failure("click here " * 30, rep)[0] == "repetition"  # type: ignore[index]
    assert failure("好好学习天天向上" * 10, rep)[0] == "repetition"  # type: ignore[index]


def test_symbol_filter() -> None:
    sym = config(symbols={})
    assert symbol_ratio("Hello, world! (yes)") == 0.0
    assert symbol_ratio("$$$ ###") == 1.0
    assert failure(EN, sym) is None and failure(ZH, sym) is None
    assert failure("★★★ $$$ ♥♥♥ BUY ★★★ $$$ ♥♥♥", sym)[0] == "symbols"  # type: ignore[index]
    assert failure("#tag #tag #tag #tag now", sym) == ("symbols", "hash/ellipsis per word 0.80 > 0.1")


def test_config_needs_a_criterion_and_sane_bounds() -> None:
    with pytest.raises(ValidationError, match="at least one of"):
        FilterConfig()
    with pytest.raises(ValidationError, match="greater than max"):
        config(length={"min": 10, "max": 5})
    with pytest.raises(ValidationError, match="allow or a deny"):
        config(language={})


def test_step_drops_rows_and_reports_by_criterion() -> None:
    table = text_table([EN, "tiny", RU, "click here to win a prize, " * 4, ZH], id=[0, 1, 2, 3, 4])
    r = report("filter")
    step = Filter(config(length={"min": 10}, language={"allow": ["en", "zh"]}, repetition={}))
    out = step.apply(table, DatasetKind.text, r)
    assert out.column("id").to_pylist() == [0, 4]
    assert (r.rows_in, r.rows_out, r.removed) == (5, 2, 3)
    assert r.counts == {"length": 1, "language": 1, "repetition": 1}
    assert [e["row"] for e in r.examples] == [1, 2, 3]
    assert r.examples[0] == {"row": 1, "reason": "length", "detail": "4 chars < min 10", "text": "tiny"}


def test_chat_rows_are_judged_on_message_contents() -> None:
    table = chat_table([[("user", RU), ("assistant", RU)], [("user", EN), ("assistant", EN)]])
    out = Filter(config(language={"allow": ["en"]})).apply(table, DatasetKind.chat, report())
    assert out.num_rows == 1
    assert out.column("messages").to_pylist()[0][0]["content"] == EN
