from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.pii import (
    PII_TYPES,
    PiiConfig,
    RedactPii,
    cn_id_valid,
    iban_valid,
    is_secret_token,
    luhn_valid,
    redact_text,
)

from .conftest import chat_table, report, text_table


def cn_id(prefix17: str) -> str:
    """A PRC identity number with its check character, computed from the standard's definition."""
    total = sum(int(d) * (pow(2, 17 - i) % 11) for i, d in enumerate(prefix17))
    return prefix17 + "10X98765432"[total % 11]


def random_token(alphabet: str, length: int, seed: int) -> str:
    rng = random.Random(seed)
    while True:
        token = "".join(rng.choice(alphabet) for _ in range(length))
        if any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token):
            return token


B62 = string.ascii_letters + string.digits
POSITIVES: dict[str, list[str]] = {
    "EMAIL": ["alice@example.com", "john.doe+news@mail.example.co.uk", "张三.li@company.cn".replace("张三.", "")],
    "PHONE": [
        "+1 415-555-2671",
        "(415) 555-2671",
        "415.555.2671",
        "13812345678",
        "+86 138 1234 5678",
        "+86-139-1234-5678",
        "+44 20 7946 0958",
        "+49 30 901820",
        "+33 1 23 45 67 89",
        "+49 151 32722046",  # holds the shape of a CN mobile (151 3272 2046): one span, not "+49 <PHONE>"
        "0086 13610798920",  # 15 digits that pass Luhn, but not laid out as a card
    ],
    "IP_ADDRESS": [
        "192.168.1.1",
        "10.0.0.255",
        "8.8.8.8",
        "2001:db8::1",
        "::1",
        "fe80::1ff:fe23:4567:890a",
        "::ffff:192.0.2.128",
    ],
    "CREDIT_CARD": [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "6011111111111117",
    ],
    "CN_ID": ["11010519491231002X", cn_id("44030819990101123"), cn_id("31010420001231567").lower()],
    "IBAN": [
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ],
    "SECRET": [
        "sk-" + random_token(B62, 40, 1),
        "sk-proj-" + random_token(B62, 40, 2),
        "sk_live_" + random_token(B62, 24, 3),
        "ghp_" + random_token(B62, 36, 4),
        "github_pat_11ABCDEFG0123456789_" + random_token(B62, 40, 5),
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AIza" + random_token(B62, 35, 6),
        "glpat-" + random_token(B62, 20, 7),
        "hf_" + random_token(B62, 34, 8),
        random_token(B62, 32, 9),
        random_token(B62 + "+/", 44, 10) + "=",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
        "-----END RSA PRIVATE KEY-----",
    ],
}

NEGATIVES = [
    "4111 1111 1111 1112",  # 16 digits failing Luhn
    "11010519491331002X",  # month 13
    "11010519490230002X",  # 30 February
    cn_id("11010519491231002")[:-1] + ("0" if cn_id("11010519491231002")[-1] != "0" else "1"),  # wrong check
    "999.1.1.1",
    "256.10.10.10",
    "1.2.3",
    "DE89370400440532013001",  # mod-97 fails
    "XX89370400440532013000",  # not a known country
    "550e8400-e29b-41d4-a716-446655440000",  # a UUID is an id, not a secret (module docstring)
    "internationalization",
    "getElementsByTagName",
    "ThisIsAVeryLongCamelCaseIdentifierName",
    "snake_case_function_name_here",
    "UserProfileServiceV2Handler",  # identifiers with a digit: word-length runs, not a random key
    "getHTTPResponse2Code",
    "src/llmops/datasets/transforms/pii.py",
    "The meeting is at 10:30:45 on 2024-01-15, version 1.2.3, page 12345.",
    "Chapter 3 costs $49.99 and weighs 2.5 kg; call it v2.0.1.",
    "std::vector<int> and a::b in C++",
    "user@localhost",
    "sk-short",
    "ISBN 978-9-81-492610-0",  # 13 digits that pass Luhn, but not laid out as a card
    "order 978 98149 261 00",
]


@pytest.mark.parametrize(("pii_type", "value"), [(t, v) for t, values in POSITIVES.items() for v in values])
def test_each_type_is_redacted_in_context(pii_type: str, value: str) -> None:
    for template in ("{}", "Contact: {}.", "联系方式：{}，谢谢", "see ({}) or later"):
        text = template.format(value)
        redacted, counts = redact_text(text)
        assert counts == {pii_type: 1}, (text, redacted, counts)
        assert redacted == template.format(f"<{pii_type}>")


@pytest.mark.parametrize("text", NEGATIVES)
def test_negatives_are_left_alone(text: str) -> None:
    assert redact_text(text) == (text, {})


def test_checks() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cn_id_valid("11010519491231002X") and cn_id_valid("11010519491231002x")
    assert not cn_id_valid("99010519491231002X")  # unknown province
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST1234569876543")
    assert is_secret_token(random_token(B62, 20, 11))
    assert not is_secret_token("A1" * 15)  # low entropy


def test_counts_by_type_and_selected_types() -> None:
    text = "mail bob@example.org, phone 13812345678, ip 10.1.2.3, card 4111 1111 1111 1111, again bob@example.org"
    redacted, counts = redact_text(text)
    assert counts == {"EMAIL": 2, "PHONE": 1, "IP_ADDRESS": 1, "CREDIT_CARD": 1}
    assert "bob" not in redacted and "4111" not in redacted
    only_email, counts = redact_text(text, types={"EMAIL"})
    assert counts == {"EMAIL": 2} and "13812345678" in only_email


SAMPLES = [v for values in POSITIVES.values() for v in values] + NEGATIVES


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(SAMPLES), st.text(max_size=12)), max_size=8).map("".join))
def test_redaction_is_idempotent(text: str) -> None:
    once, _ = redact_text(text)
    twice, counts = redact_text(once)
    assert twice == once
    assert not counts


def test_step_on_chat_reports_counts_and_never_the_values() -> None:
    table = chat_table(
        [
            [("user", "my email is carol@example.com"), ("assistant", "noted; call 415-555-2671?")],
            [("user", "nothing here")],
        ]
    )
    r = report("pii")
    out = RedactPii(PiiConfig()).apply(table, DatasetKind.chat, r)
    assert out.column("messages").to_pylist()[0] == [
        {"role": "user", "content": "my email is <EMAIL>"},
        {"role": "assistant", "content": "noted; call <PHONE>?"},
    ]
    assert (r.changed, r.counts) == (1, {"EMAIL": 1, "PHONE": 1})
    assert r.examples[0]["types"] == {"EMAIL": 1, "PHONE": 1}
    assert "carol" not in str(r.model_dump())


def test_step_respects_configured_types() -> None:
    r = report("pii")
    out = RedactPii(PiiConfig(types=["PHONE"])).apply(text_table(["dave@example.com 13812345678"]), DatasetKind.text, r)
    assert out.column("text").to_pylist() == ["dave@example.com <PHONE>"]
    assert set(PII_TYPES) >= set(r.counts)


def test_values_right_against_cjk_characters() -> None:
    """Chinese text puts values right against Han characters; a Han character is not part of the value."""
    text = "账户NL91ABNA0417164300已关闭，卡号4111111111111111已冻结，电话13812345678请回电"
    assert redact_text(text) == (
        "账户<IBAN>已关闭，卡号<CREDIT_CARD>已冻结，电话<PHONE>请回电",
        {"IBAN": 1, "CREDIT_CARD": 1, "PHONE": 1},
    )
