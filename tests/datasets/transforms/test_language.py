from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmops.datasets.language import (
    CJK_SCRIPTS,
    SCRIPTS,
    char_script,
    detect_language,
    is_cjk,
    script_counts,
    script_of,
    script_shares,
)


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("The quick brown fox", "Latin"),
        ("Ça, c'est déjà l'été", "Latin"),
        ("今天天气很好", "Han"),
        ("これはひらがなとカタカナです", "Kana"),
        ("안녕하세요 여러분", "Hangul"),
        ("Привет, как дела?", "Cyrillic"),
        ("مرحبا بالعالم", "Arabic"),
        ("नमस्ते दुनिया", "Devanagari"),
        ("Καλημέρα κόσμε", "Greek"),
        ("ሰላም ለዓለም", "Other"),
        ("12345 !!! ...", "Other"),
        ("", "Other"),
    ],
)
def test_script_of(text: str, script: str) -> None:
    assert script_of(text) == script
    assert script in SCRIPTS


def test_script_shares_count_letters_only() -> None:
    shares = script_shares("価格は100円です")  # digits are script-neutral
    assert set(shares) == {"Han", "Kana"}
    assert shares["Han"] == pytest.approx(3 / 6)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert script_shares("123 !?") == {}


def test_char_script_boundaries() -> None:
    assert char_script("×") is None  # U+00D7 sits between Latin-1 letters but is a symbol
    assert char_script("é") == "Latin"
    assert char_script("々") == "Han"
    assert char_script("ｱ") == "Kana"  # halfwidth katakana
    assert char_script("Ａ") == "Latin"  # fullwidth
    assert char_script("𠀀") == "Han"  # CJK extension B, outside the BMP
    assert char_script(" ") is None and char_script("7") is None


def test_is_cjk() -> None:
    assert is_cjk("我爱北京天安门") and is_cjk("ありがとう") and is_cjk("감사합니다")
    assert not is_cjk("thank you") and {"Han", "Kana", "Hangul"} == CJK_SCRIPTS


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("The weather is lovely today and we are going for a long walk in the park.", "en"),
        ("今天天气很好，我们一起去公园散步吧，顺便买点水果回家。", "zh"),
        ("今日はとても良い天気なので、公園を散歩しましょう。", "ja"),
        ("Сегодня прекрасная погода, и мы пойдём гулять в парк.", "ru"),
        ("Heute ist das Wetter schön und wir gehen im Park spazieren.", "de"),
    ],
)
def test_detect_language(text: str, code: str) -> None:
    detected, confidence = detect_language(text)
    assert detected == code
    assert 0.5 <= confidence <= 1.0


@pytest.mark.parametrize("text", ["", "  ", "hi", "12345 67890", "!!"])
def test_detect_language_undetermined(text: str) -> None:
    assert detect_language(text) == ("und", 0.0)


@given(st.text())
def test_script_counts_agree_with_char_script(text: str) -> None:
    expected = Counter(s for s in map(char_script, text) if s is not None)
    assert script_counts(text) == expected
