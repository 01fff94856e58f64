"""PII redaction into typed placeholders.

We wrote our own detectors instead of using Microsoft Presidio: Presidio's recognisers lean on spaCy language
models that cannot be downloaded here, and its pattern recognisers cover neither PRC resident identity numbers
nor mainland-China mobile numbers. Ours are regular expressions that find candidates, each followed by the
check that makes the type precise: Luhn for payment cards, ISO 7064 MOD 11-2 and a real date of birth for
PRC identity numbers, the country length table and mod-97 for IBANs, the ``ipaddress`` module for IPs.

Types and placeholders (applied in this order, so that the more specific type wins):

=============== ================== ================================================================
``SECRET``      ``<SECRET>``       known key prefixes: ``sk-`` (OpenAI, Anthropic ``sk-ant-``), Stripe
                                   ``sk_live_``/``sk_test_``/``rk_``/``pk_``, GitHub ``ghp_ gho_ ghu_ ghs_
                                   ghr_ github_pat_``, AWS ``AKIA``/``ASIA``, Slack ``xox[baprs]-``,
                                   Google ``AIza``, GitLab ``glpat-``, Hugging Face ``hf_``, JWTs, PEM
                                   private key blocks
``EMAIL``       ``<EMAIL>``        local@domain.tld
``IBAN``        ``<IBAN>``         country code + check digits, length from ``IBAN_LENGTHS``, mod-97 = 1
``CN_ID``       ``<CN_ID>``        18 characters: region (valid province code), birth date YYYYMMDD
                                   (a real date, 1900–2099), sequence, ISO 7064 MOD 11-2 check (0–9, X)
``CREDIT_CARD`` ``<CREDIT_CARD>``  13–19 digits, Luhn-valid, bare or grouped as cards are printed (by
                                   spaces or by dashes, in fours, or 4-6-5 / 4-6-4)
``IP_ADDRESS``  ``<IP_ADDRESS>``   IPv4 (each octet 0–255, no leading zeros) and IPv6 (incl. ``::``
                                   compression and embedded IPv4, at least one digit), validated by
                                   ``ipaddress``
``PHONE``       ``<PHONE>``        international ``+CC …`` with 8–15 digits and spaces, dots, dashes or
                                   parentheses (E.164 with separators; first, so that a number such as
                                   ``+49 151 3272 2046`` is one span); mainland-China mobile
                                   ``1[3-9]x xxxx xxxx`` (optional +86/0086); North American
                                   ``(NXX) NXX-XXXX`` with separators (optional +1)
``SECRET``      ``<SECRET>``       high-entropy tokens (last, see below)
=============== ================== ================================================================

High-entropy tokens: a run of at least ``MIN_SECRET_LENGTH`` (20) characters of the base64 / URL-safe
alphabet (``A–Z a–z 0–9 + / _ -``, optional ``=`` padding) that contains an upper-case letter, a lower-case
letter and a digit, with Shannon entropy ≥ 0.8 × log2(min(length, 64)) bits per character; or a run of at
least 32 hex digits (one case; 128-bit keys and longer, shorter hex runs are mostly ids, colours and account
numbers) with a letter and a digit and entropy ≥ 0.75 × 4 bits. Random tokens clear these bars in about 99%
of cases (measured on 2,000 random tokens per length); prose, identifiers such as ``getElementsByTagName``
and long words do not (they lack digits or have low entropy). CamelCase identifiers that contain a digit
(``UserProfileServiceV2Handler``) would clear them; they are told apart by their runs of one case or of
digits, which average 4 or more characters in a name and under 2 in a random key (``_identifier_like``;
names with many short runs, such as ``parse_utf8_Decoder16``, can still be taken for secrets).
UUIDs (8-4-4-4-12 hex) are deliberately *not* secrets: in text they are request, order and object
ids, and redacting them would destroy meaning without protecting anyone.

``redact_text`` repeats the passes until nothing changes, so redaction is idempotent. Reports never contain
the redacted values: examples show the text after redaction and the counts by type.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.columns import map_texts, row_ids, row_texts
from llmops.datasets.transforms.report import StepReport, clip

PiiType = Literal["EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "CN_ID", "IBAN", "SECRET"]
PII_TYPES: tuple[str, ...] = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "CN_ID", "IBAN", "SECRET")

MIN_SECRET_LENGTH = 20
MIN_HEX_SECRET_LENGTH = 32

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}  # fmt: skip
"""IBAN length by country (ISO 13616 registry) for the countries we check; other countries are not matched."""

CN_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54}
    | {61, 62, 63, 64, 65, 71, 81, 82, 91}
)
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2**(17 - i) mod 11
_CN_CHECK = "10X98765432"

_ASCII_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_B = r"(?<![0-9A-Za-z])"  # no letter or digit before
_E = r"(?![0-9A-Za-z])"  # no letter or digit after

_KNOWN_SECRETS = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[baprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r")(?![A-Za-z0-9_-])"
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_IBAN = re.compile(_B + r"([A-Z]{2})[0-9]{2}(?: ?[A-Z0-9]){11,30}")
_CN_ID = re.compile(_B + r"[1-9][0-9]{5}(?:19|20)[0-9]{2}[0-9]{4}[0-9]{3}[0-9Xx]" + _E)
_CARD = re.compile(r"(?<![0-9A-Za-z+-])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z-])")
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4})(?![0-9A-Za-z:])"
)
_PHONE_CN = re.compile(r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}" + _E)
_PHONE_NA = re.compile(
    r"(?<![0-9A-Za-z+])(?:\+1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}" + _E
)
_PHONE_INTL = re.compile(r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){2,7}" + _E)
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def cn_id_valid(value: str) -> bool:
    """Whether an 18-character PRC resident identity number has a known province, a real birth date and a
    correct ISO 7064 MOD 11-2 check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    if int(value[:2]) not in CN_PROVINCES:
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_WEIGHTS, strict=True))
    return _CN_CHECK[total % 11] == value[17].upper()


def iban_valid(compact: str) -> bool:
    """Whether an IBAN without spaces has its country's length and passes mod-97."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def shannon_entropy(text: str) -> float:
    """Bits per character of the character distribution of ``text``."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0


def is_secret_token(token: str) -> bool:
    """Whether ``token`` looks like a random key (see the module docstring for the rule)."""
    body = token.rstrip("=")
    if len(body) < MIN_SECRET_LENGTH or _UUID.fullmatch(body):
        return False
    has_digit = any(c.isdigit() for c in body)
    if _HEX.fullmatch(body):
        has_letter = any(c.isalpha() for c in body)
        long_enough = len(body) >= MIN_HEX_SECRET_LENGTH
        return long_enough and has_digit and has_letter and shannon_entropy(body) >= 0.75 * 4
    if not (has_digit and any(c.isupper() for c in body) and any(c.islower() for c in body)):
        return False
    if _identifier_like(body):
        return False
    return shannon_entropy(body) >= 0.8 * math.log2(min(len(body), 64))


_RUNS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+|[^A-Za-z0-9]+")


def _identifier_like(body: str) -> bool:
    """CamelCase and snake_case names (``UserProfileServiceV2Handler``) are made of word-length runs; a
    random key's case and digit runs average under 2 characters. Runs averaging 4 or more mean a name."""
    runs = _RUNS.findall(body)
    return bool(runs) and len(body) / len(runs) >= 4


def _iban_spans(text: str) -> Iterable[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        seen, end = 0, match.start()
        for pos in range(match.start(), match.end()):
            if text[pos] != " ":
                seen += 1
                if seen == length:
                    end = pos + 1
                    break
        if seen != length or (end < len(text) and text[end] in _ASCII_ALNUM):
            continue
        if iban_valid(text[match.start() : end].replace(" ", "")):
            yield match.start(), end


def _regex_spans(pattern: re.Pattern[str], valid: Callable[[str], bool]) -> Callable[[str], Iterable[tuple[int, int]]]:
    def spans(text: str) -> Iterable[tuple[int, int]]:
        for match in pattern.finditer(text):
            if valid(match.group(0)):
                yield match.span()

    return spans


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


_CARD_LAYOUTS = frozenset({(4, 6, 5), (4, 6, 4)})
"""Grouped card numbers are printed in fours (the last group 1–4 digits) or, for 15- and 14-digit cards
(American Express, Diners Club), 4-6-5 and 4-6-4."""


def _card_layout_valid(candidate: str) -> bool:
    """Whether the separators of a card candidate are those of a printed card number: none, or one kind
    (space or dash) between groups laid out as in ``_CARD_LAYOUTS``. ISBNs (978-3-16-148410-0) and phone
    numbers (0086 13812345678) are not."""
    separators = {c for c in candidate if not c.isdigit()}
    if not separators:
        return True
    if len(separators) > 1:
        return False
    groups = tuple(len(g) for g in candidate.split(separators.pop()))
    return groups in _CARD_LAYOUTS or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)


def _card_valid(candidate: str) -> bool:
    digits = _digits(candidate)
    return 13 <= len(digits) <= 19 and luhn_valid(digits) and _card_layout_valid(candidate)


def _ipv4_valid(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def _ipv6_valid(candidate: str) -> bool:
    if not any(c.isdigit() for c in candidate):  # "a::b" (C++ scopes) is a valid address but not one in text
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _intl_phone_valid(candidate: str) -> bool:
    return 8 <= len(_digits(candidate)) <= 15


def _always(_: str) -> bool:
    return True


Detector = tuple[str, Callable[[str], Iterable[tuple[int, int]]]]

DETECTORS: tuple[Detector, ...] = (
    ("SECRET", _regex_spans(_KNOWN_SECRETS, _always)),
    ("EMAIL", _regex_spans(_EMAIL, _always)),
    ("IBAN", _iban_spans),
    ("CN_ID", _regex_spans(_CN_ID, cn_id_valid)),
    ("CREDIT_CARD", _regex_spans(_CARD, _card_valid)),
    ("IP_ADDRESS", _regex_spans(_IPV6, _ipv6_valid)),
    ("IP_ADDRESS", _regex_spans(_IPV4, _ipv4_valid)),
    ("PHONE", _regex_spans(_PHONE_INTL, _intl_phone_valid)),  # first: "+49 151 3272 2046" holds a CN mobile shape
    ("PHONE", _regex_spans(_PHONE_CN, _always)),
    ("PHONE", _regex_spans(_PHONE_NA, _always)),
    ("SECRET", _regex_spans(_TOKEN, is_secret_token)),
)
"""(type, span finder) in the order they run; each sees the text with the previous ones already redacted."""


def _redact_once(text: str, types: Collection[str]) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    for pii_type, find in DETECTORS:
        if pii_type not in types:
            continue
        spans = list(find(text))
        if not spans:
            continue
        placeholder = f"<{pii_type}>"
        parts: list[str] = []
        last = 0
        for start, end in spans:
            parts.append(text[last:start])
            parts.append(placeholder)
            last = end
        parts.append(text[last:])
        text = "".join(parts)
        counts[pii_type] += len(spans)
    return text, counts


def redact_text(text: str, *, types: Collection[str] = PII_TYPES) -> tuple[str, Counter[str]]:
    """``text`` with every PII value of ``types`` replaced by its placeholder, and the counts by type.

    Idempotent: ``redact_text(redact_text(t)[0])[0] == redact_text(t)[0]`` (passes repeat until stable).
    """
    total: Counter[str] = Counter()
    for _ in range(4):
        text, counts = _redact_once(text, types)
        if not counts:
            break
        total.update(counts)
    return text, total


class PiiConfig(BaseModel):
    """``pii`` step: which types to redact (all by default)."""

    model_config = ConfigDict(extra="forbid")

    types: list[PiiType] = Field(default_factory=lambda: list(PII_TYPES))  # type: ignore[arg-type]


class RedactPii:
    """Row-wise step: redact PII in every text (each chat message's content); counts by type."""

    name = "pii"

    def __init__(self, config: PiiConfig) -> None:
        self.config = config
        self._types = frozenset(config.types)

    def apply(self, table: pa.Table, kind: DatasetKind, report: StepReport) -> pa.Table:
        row_counts: list[Counter[str]] = [Counter() for _ in range(table.num_rows)]

        def edit(row: int, text: str) -> str:
            new, counts = redact_text(text, types=self._types)
            row_counts[row].update(counts)
            return new

        out, _, _ = map_texts(table, kind, edit)
        report.rows_in += table.num_rows
        report.rows_out += out.num_rows
        ids = row_ids(table)
        texts: list[str] | None = None
        for i, counts in enumerate(row_counts):
            if not counts:
                continue
            report.changed += 1
            for pii_type, n in counts.items():
                report.count(pii_type, n)
            if report.wants_examples:
                texts = texts if texts is not None else row_texts(out, kind)
                report.example({"row": ids[i], "redacted": clip(texts[i]), "types": dict(sorted(counts.items()))})
        return out
