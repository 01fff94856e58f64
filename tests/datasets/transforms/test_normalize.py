from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.normalize import Normalize, NormalizeConfig, normalize_text

from .conftest import chat_table, report, text_table


def test_nfkc_folds_compatibility_forms() -> None:
    assert normalize_text("ＡＢＣ１２３") == "ABC123"
    assert normalize_text("ﬁne") == "fine"
    assert normalize_text("e\u0301") == "é"


def test_control_and_invisible_characters_removed() -> None:
    assert normalize_text("a\x00b\x07c\u200bd\ufeffe\u00adf") == "abcdef"
    assert normalize_text("👩\u200d💻") == "👩\u200d💻"  # the joiner of an emoji sequence stays


def test_whitespace_collapsed_and_newlines_kept() -> None:
    text = "  Hello \t  world  \r\n\r\n\r\n\r\nSecond\u3000paragraph\u00a0here \u2028third line  "
    assert normalize_text(text) == "Hello world\n\nSecond paragraph here\nthird line"
    assert normalize_text("a\n\n\n\nb", NormalizeConfig(max_blank_lines=0)) == "a\nb"
    assert normalize_text("def f():\n    return  1", NormalizeConfig(preserve_indentation=True)) == (
        "def f():\n    return 1"
    )


def test_switches_turn_parts_off() -> None:
    config = NormalizeConfig(nfkc=False, collapse_whitespace=False, remove_control=False)
    assert normalize_text("ＡＢ  c\x00", config) == "ＡＢ  c\x00"


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_step_reports_changed_rows_with_before_after() -> None:
    step = Normalize(NormalizeConfig())
    r = report()
    out = step.apply(text_table(["fine", "ｆｕｌｌ  width", None]), DatasetKind.text, r)  # type: ignore[list-item]
    assert out.column("text").to_pylist() == ["fine", "full width", None]
    assert (r.rows_in, r.rows_out, r.changed) == (3, 3, 1)
    assert r.examples == [{"row": 1, "before": "ｆｕｌｌ  width", "after": "full width"}]


def test_chat_edits_every_message_content_not_roles() -> None:
    table = chat_table([[("user", "  hi\u200b there "), ("assistant", "ＯＫ")]])
    out = Normalize(NormalizeConfig()).apply(table, DatasetKind.chat, report())
    assert out.column("messages").to_pylist() == [
        [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "OK"}]
    ]
    assert out.schema == table.schema
