"""A small planted dataset for executor tests: every step has something to do."""

from __future__ import annotations

import random

from .test_dedup import EN_A, EN_A_NEAR, EN_B, ZH_A, ZH_A_NEAR, ZH_B

RECIPE = """
name: every-step
steps:
  - normalize: {}
  - filter:
      length: {min: 12}
      language: {allow: [en, zh]}
      repetition: {}
      symbols: {}
  - dedup: {kind: exact}
  - dedup: {kind: minhash}
  - pii: {}
  - split: {fractions: {train: 0.6, validation: 0.2, test: 0.2}, seed: 3}
"""

TOPICS = ["river", "garden", "library", "market", "station", "harbour", "mountain", "school", "bakery", "museum"]
VERBS = ["visited", "painted", "described", "cleaned", "photographed", "measured", "repaired", "admired"]


def planted_texts(n: int = 120, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        words = " ".join(f"{rng.choice(VERBS)} the {rng.choice(TOPICS)}" for _ in range(12))
        base = f"On day {i} our group {words}, and everyone agreed it was a fine afternoon."
        out.append(base)
        if i % 9 == 0:
            out.append(base.upper())  # exact duplicate after case folding
        if i % 11 == 0:
            out.append("  " + base.replace(" ", "  "))  # exact after whitespace collapsing
        if i % 7 == 0:
            out.append(
                f"Please write to alice{i}@example.com or call +1 415-555-{2600 + i:04d} about the {TOPICS[i % 10]} "
                f"trip on day {i}; you can pay with the card 4111 1111 1111 1111 as we agreed with the whole team."
            )
        if i % 13 == 0:
            out.append("Привет, как у тебя дела сегодня? Всё хорошо, спасибо, идём гулять в парк.")
        if i % 17 == 0:
            out.append("Great deals today only for every customer in town: $$$ ### @@@ ~~~ ^^^ *** +++ === <<< >>> |||")
        if i % 19 == 0:
            out.append("tiny")
        if i % 23 == 0:
            out.append("buy cheap now\n" * 6)
    out += [
        EN_A,
        EN_B,
        EN_A_NEAR,
        ZH_A,
        ZH_B,
        ZH_A_NEAR,
        "ｆｕｌｌｗｉｄｔｈ text with\u200b hidden\x07 bits, id 11010519491231002X",
    ]
    return out
