"""The cleaning steps of scripts/build_reference_corpus.py on small inputs (the Debian packages are not needed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_reference_corpus.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_reference_corpus", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_html_main_text_keeps_pre_and_drops_navigation(script: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<div class='related'>Navigation Next</div>"
        "<div class='body' role='main'><h1>Title<a class='headerlink'>¶</a></h1>"
        "<p>First   paragraph &amp; <code>code</code>.</p>"
        "<pre>def f():\n    return 1\n</pre><script>alert(1)</script>"
        "<ul><li>one</li><li>two</li></ul></div>"
        "<div class='footer'>© footer</div></body></html>",
        encoding="utf-8",
    )
    text = script.html_text(page, ("div", "body"))
    assert text == "Title\n\nFirst paragraph & code.\n\ndef f():\n    return 1\n\none\n\ntwo"  # list items: paragraphs


def test_fortunes_split_and_ansi_removed(script: ModuleType, tmp_path: Path) -> None:
    cookies = tmp_path / "cookies"
    cookies.write_text("\x1b[32m《静夜思》\x1b[m\n床前明月光\n%\nSecond\tcookie  \n\n\n\nend\n%\n", encoding="utf-8")
    assert script.fortune_file(cookies) == ["《静夜思》\n床前明月光", "Second    cookie\n\nend", ""]


def test_chunks_cut_at_paragraphs_and_never_exceed_the_limit(script: ModuleType) -> None:
    text = "\n\n".join(f"paragraph {i} " + "x" * 50 for i in range(40)) + "\n\n" + "y" * 250
    pieces = list(script.chunks(text, max_chars=200))
    assert all(len(p) <= 200 for p in pieces)
    assert "".join(p.replace("\n", "") for p in pieces) == text.replace("\n", "")
    assert pieces[0].startswith("paragraph 0") and pieces[1].startswith("paragraph 3")


def test_rows_are_json_with_provenance(script: ModuleType, tmp_path: Path) -> None:
    rows = [script.Row("床前明月光，疑是地上霜。", "fortunes-zh:tang300#0", "zh", "GPL-3.0-or-later")]
    stats = script.write_jsonl(rows, tmp_path / "out.jsonl")
    line = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert json.loads(line) == {
        "text": "床前明月光，疑是地上霜。",
        "source": "fortunes-zh:tang300#0",
        "lang": "zh",
        "license": "GPL-3.0-or-later",
    }
    assert stats["rows"] == 1 and "床" in line  # not \\u-escaped
