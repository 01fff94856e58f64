#!/usr/bin/env python3
"""Build the English + Chinese reference corpus from Debian packages and import it as dataset versions.

The hub is not reachable, so the platform makes its own training text, reproducibly, from text that
Debian ships under free licences (see assets/PROVENANCE.md for every source, version and licence):

- English: the Python 3 documentation (``python3-doc``, HTML), the Debian Reference (``debian-reference-en``,
  HTML) and the ``fortunes`` / ``fortunes-min`` cookie files (``fortunes-off`` is never used);
- Chinese: ``fortunes-zh`` (classical poems and sayings) and the Debian Reference in simplified Chinese
  (``debian-reference-zh-cn``, HTML).

Cleaning is deliberately light: HTML is reduced to its main text (the ``div.body`` of a Sphinx page, the whole
body of a DocBook page; navigation, scripts and styles dropped, ``<pre>`` kept verbatim), ANSI colour escapes are
removed from the fortune files, whitespace is collapsed and long documents are cut at paragraph boundaries into
chunks of at most ``MAX_CHARS`` characters, so that a row is a unit the train/validation split can hold out.
Heavier cleaning (dedup, PII, language filters) is the job of ``llmops data clean`` recipes.

Output (deterministic: files are read in sorted order, rows keep that order, no timestamps):
``OUT/reference-corpus-en.jsonl`` and ``OUT/reference-corpus-zh.jsonl`` with the columns ``text``, ``source``
(``package:path``), ``lang`` and ``license``, plus ``OUT/manifest.json`` (package versions, row and byte counts,
SHA-256 of each file). The two files are imported as the dataset versions ``reference-corpus-en`` and
``reference-corpus-zh`` (kind ``text``); content addressing makes a rebuild of the same packages return the
existing versions. One dataset per language (rather than one mixed dataset) keeps the per-language statistics
and token costs separate; the training recipe mixes them and holds out its own validation split.

Usage::

    python scripts/build_reference_corpus.py [--out build/reference-corpus] [--install] [--no-import]
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

MAX_CHARS = 4000
MIN_CHARS = 20

PACKAGES = (
    "python3-doc",
    "python3.11-doc",
    "debian-reference-en",
    "debian-reference-zh-cn",
    "fortunes",
    "fortunes-min",
    "fortunes-zh",
)

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
FORTUNES = Path("/usr/share/games/fortunes")
#: English fortune files that are not prose: ASCII pictures, and a file of untranslated foreign-language jokes.
FORTUNES_SKIPPED = {"ascii-art", "translate-me"}
FORTUNES_ZH = ("chinese", "song100", "tang300")
#: Python docs pages that are lists of links rather than text.
PYTHON_SKIPPED = re.compile(r"^(genindex|py-modindex|search|contents)|/_|^_")

LICENSES = {
    "python3-doc": "PSF-2.0",
    "python3.11-doc": "PSF-2.0",
    "debian-reference-en": "GPL-2.0-or-later",
    "debian-reference-zh-cn": "GPL-2.0-or-later",
    "fortunes": "BSD-3-Clause (fortune-mod; quotations of mixed origin, see /usr/share/doc/fortunes/copyright)",
    "fortunes-min": "BSD-3-Clause (fortune-mod; quotations of mixed origin, see /usr/share/doc/fortunes/copyright)",
    "fortunes-zh": "GPL-3.0-or-later (collection); classical poems are in the public domain",
}

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Row:
    text: str
    source: str
    lang: str
    license: str

    def json(self) -> str:
        return json.dumps(
            {"text": self.text, "source": self.source, "lang": self.lang, "license": self.license}, ensure_ascii=False
        )


# --- cleaning ----------------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    """NFC, no control characters, no trailing spaces, runs of blank lines collapsed to one."""
    text = unicodedata.normalize("NFC", CONTROL.sub("", ANSI.sub("", text)).replace("\r\n", "\n").replace("\t", "    "))
    lines = [line.rstrip() for line in text.split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return out.strip()


def chunks(text: str, max_chars: int = MAX_CHARS) -> Iterator[str]:
    """Cut at paragraph boundaries into pieces of at most ``max_chars`` (a longer paragraph is cut at lines)."""
    piece: list[str] = []
    size = 0
    for para in text.split("\n\n"):
        parts = [para] if len(para) <= max_chars else _split_long(para, max_chars)
        for part in parts:
            if size and size + len(part) + 2 > max_chars:
                yield "\n\n".join(piece)
                piece, size = [], 0
            piece.append(part)
            size += len(part) + 2
    if piece:
        yield "\n\n".join(piece)


def _split_long(para: str, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for line in para.split("\n"):
        while len(line) > max_chars:  # a single giant line: hard cut
            if current:
                out.append(current)
                current = ""
            out.append(line[:max_chars])
            line = line[max_chars:]
        if current and len(current) + len(line) + 1 > max_chars:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


class _TextExtractor(HTMLParser):
    """Main text of an HTML page: block elements become line breaks, ``<pre>`` keeps its whitespace.

    ``root`` selects the element holding the text (``("div", "body")`` for Sphinx pages); without it the whole
    ``<body>`` is used. Navigation, headers/footers, scripts and styles are dropped.
    """

    BLOCK = {
        "p", "div", "section", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "tr", "pre", "blockquote", "title", "figure", "hr",
    }  # fmt: skip
    DROP = {"script", "style", "nav", "head", "footer", "header"}
    DROP_CLASSES = {"navheader", "navfooter", "sphinxsidebar", "related", "footer", "headerlink", "toc"}
    VOID = {"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"}

    def __init__(self, root: tuple[str, str] | None) -> None:
        super().__init__(convert_charrefs=True)
        self.root = root
        self.depth_in_root = 0 if root else 1
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, opened root, opened a dropped subtree)
        self.dropped = 0
        self.pre = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        is_root = self.root is not None and tag == self.root[0] and self.root[1] in classes
        drop = tag in self.DROP or bool(classes & self.DROP_CLASSES)
        if tag in self.VOID:
            if tag in self.BLOCK and self.depth_in_root and not self.dropped:
                self.parts.append("\n")
            return
        self.stack.append((tag, is_root, drop))
        if is_root:
            self.depth_in_root += 1
        if drop:
            self.dropped += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK and self.depth_in_root and not self.dropped:
            self.parts.append("\n\n" if tag in {"p", "pre", "h1", "h2", "h3", "h4", "table", "dl"} else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self.stack:  # tolerate unclosed tags: pop up to the matching one
            name, is_root, drop = self.stack.pop()
            if is_root:
                self.depth_in_root -= 1
            if drop:
                self.dropped -= 1
            if name == "pre":
                self.pre -= 1
            if name == tag:
                break
        if tag in self.BLOCK and self.depth_in_root and not self.dropped:
            self.parts.append("\n\n" if tag in {"p", "pre", "table", "dl"} else "\n")

    def handle_data(self, data: str) -> None:
        if not self.depth_in_root or self.dropped:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip(" ") if not line.startswith("    ") else line for line in "".join(self.parts).split("\n")]
        return "\n".join(lines)


def html_text(path: Path, root: tuple[str, str] | None) -> str:
    parser = _TextExtractor(root)
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return normalize(html.unescape(parser.text()))


# --- sources -----------------------------------------------------------------------------------------------
def _rows(package: str, rel: str, text: str, lang: str) -> Iterator[Row]:
    for i, piece in enumerate(chunks(text)):
        if len(piece) >= MIN_CHARS:
            source = f"{package}:{rel}" if i == 0 else f"{package}:{rel}#{i}"
            yield Row(piece, source, lang, LICENSES[package])


def python_docs() -> Iterator[Row]:
    for path in sorted(PYTHON_DOCS.rglob("*.html")):
        rel = path.relative_to(PYTHON_DOCS).as_posix()
        if PYTHON_SKIPPED.search(rel):
            continue
        yield from _rows("python3.11-doc", rel, html_text(path, ("div", "body")), "en")


def debian_reference(lang: str) -> Iterator[Row]:
    suffix, package = {"en": (".en.html", "debian-reference-en"), "zh": (".zh-cn.html", "debian-reference-zh-cn")}[lang]
    for path in sorted(DEBIAN_REFERENCE.glob(f"*{suffix}")):
        if path.name.startswith("index"):
            continue  # the table of contents
        yield from _rows(package, path.name, html_text(path, None), lang)


def fortune_file(path: Path) -> list[str]:
    """The cookies of a fortune file: separated by lines holding only ``%``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [normalize(c) for c in re.split(r"^%\s*$", text, flags=re.MULTILINE)]


def fortunes(lang: str) -> Iterator[Row]:
    owners = _owners(FORTUNES)
    names = FORTUNES_ZH if lang == "zh" else sorted(
        p.name for p in FORTUNES.iterdir()
        if p.is_file() and not p.is_symlink() and "." not in p.name
        and p.name not in FORTUNES_ZH and p.name not in FORTUNES_SKIPPED
    )  # fmt: skip
    for name in names:
        package = owners.get(name, "fortunes")
        if package not in LICENSES:
            continue  # a fortune file of another package (e.g. fortunes-off): not a vetted source
        cookies = [c for c in fortune_file(FORTUNES / name) if len(c) >= MIN_CHARS]
        # poems are short: twenty to a row, so that a row is a document rather than a line
        groups = ["\n\n".join(cookies[i : i + 20]) for i in range(0, len(cookies), 20)] if lang == "zh" else cookies
        for i, text in enumerate(groups):
            yield Row(text, f"{package}:{name}#{i}", lang, LICENSES[package])


def _owners(directory: Path) -> dict[str, str]:
    """Which installed package ships each file in ``directory`` (dpkg's file lists)."""
    owners: dict[str, str] = {}
    for package in PACKAGES:
        listing = Path(f"/var/lib/dpkg/info/{package}.list")
        if not listing.is_file():
            listing = next(iter(sorted(Path("/var/lib/dpkg/info").glob(f"{package}:*.list"))), listing)
        if listing.is_file():
            for line in listing.read_text().splitlines():
                path = Path(line)
                if path.parent == directory:
                    owners[path.name] = package
    return owners


# --- packages ----------------------------------------------------------------------------------------------
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}\t${Version}", package], capture_output=True, text=True, check=False
        )
        status, _, version = result.stdout.partition("\t")
        versions[package] = version if result.returncode == 0 and status.endswith(" installed") else None
    return versions


def install(missing: Iterable[str]) -> None:
    names = list(missing)
    print(f"installing Debian packages: {' '.join(names)}", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *names],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


# --- output ------------------------------------------------------------------------------------------------
def write_jsonl(rows: Iterable[Row], path: Path) -> dict[str, int | str]:
    """Write atomically (temp file + rename); return rows, characters, bytes and the SHA-256."""
    tmp = path.with_suffix(".jsonl.tmp")
    digest = hashlib.sha256()
    count = chars = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            line = row.json() + "\n"
            fh.write(line)
            digest.update(line.encode())
            count += 1
            chars += len(row.text)
    tmp.replace(path)
    return {"rows": count, "chars": chars, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def build(out: Path) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Callable[[], list[Row]]] = {
        "reference-corpus-en": lambda: [*python_docs(), *debian_reference("en"), *fortunes("en")],
        "reference-corpus-zh": lambda: [*fortunes("zh"), *debian_reference("zh")],
    }
    stats: dict[str, object] = {}
    for name, rows in files.items():
        stats[name] = write_jsonl(rows(), out / f"{name}.jsonl")
    manifest = {"packages": package_versions(), "licenses": LICENSES, "max_chars": MAX_CHARS, "files": stats}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def import_datasets(out: Path, home: Path | None) -> None:
    """Import both files as dataset versions through the platform (content-addressed: a rebuild is a no-op)."""
    from llmops.platform import Platform, default_platform
    from llmops.security.actor import local_admin
    from llmops.settings import Settings

    platform = Platform(Settings(home=home)) if home else default_platform()
    datasets = getattr(platform, "datasets", None)
    if datasets is None:
        print("this llmops has no dataset service yet: the JSONL files are written, import them later", file=sys.stderr)
        return
    actor = local_admin(via="script")
    for lang in ("en", "zh"):
        name = f"reference-corpus-{lang}"
        version = datasets.import_path(
            actor,
            out / f"{name}.jsonl",
            name=name,
            kind="text",
            description=f"Reference corpus ({lang}) built from Debian packages; see assets/PROVENANCE.md",
            tags={"lang": lang, "source": "debian-packages"},
        )
        print(f"{name}: {getattr(version, 'ref', version)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/reference-corpus"), help="Output directory.")
    parser.add_argument("--install", action="store_true", help="apt-get install the source packages when missing.")
    parser.add_argument("--no-import", action="store_true", help="Only write the JSONL files.")
    parser.add_argument("--home", type=Path, default=None, help="Platform home (default: LLMOPS_HOME).")
    args = parser.parse_args(argv)
    missing = [p for p, v in package_versions().items() if v is None]
    if missing and args.install:
        install(missing)
        missing = [p for p, v in package_versions().items() if v is None]
    if missing:
        print(
            f"error: Debian packages not installed: {' '.join(missing)}; run with --install (as root) or "
            f"apt-get install {' '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    manifest = build(args.out)
    print(json.dumps(manifest["files"], indent=2))
    if not args.no_import:
        import_datasets(args.out, args.home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
