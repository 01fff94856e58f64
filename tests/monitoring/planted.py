"""The vocabulary of the planted-shift windows, shared by the drift tests (``tests/monitoring/conftest.py``)
and the drift benchmark (``benchmarks/drift_detection.py``): one copy of the word lists and of the way words
are drawn, so that both plant the same shifts. Each keeps its own window generator (the benchmark's texts are
longer and vary more in length).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


COMMON = _split(
    "the of and to a in is it you that for on are with as be at this have from or by not but what all were "
    "when we there can an your which their said if will each about how up out them then she many some so these "
    "would other into has more her two like him see time could no make than first been its who now people my "
    "made over did down only way find use may water long little very after words called just where most know "
    "get through back much before go good new write our used me man too any day same right look think also "
    "around another came come work three word must because does part even place well such here take why things "
    "help put years different away again off went old number great tell men say small every found still "
    "between name should home big give air line set own under read last never us left end along while might "
    "next sound below saw something thought both few those always looked show large often together asked house"
)
TOPICS: dict[str, tuple[str, ...]] = {
    "cooking": _split(
        "recipe oven flour sugar butter bake dough pan salt garlic onion sauce boil fry dinner "
        "kitchen spoon cheese bread soup vegetables chicken pasta rice tomato pepper"
    ),
    "travel": _split(
        "flight hotel airport passport luggage beach train ticket museum city tour booking "
        "island map journey visa trip hostel mountains guide vacation cruise border"
    ),
    "software": _split(
        "code function bug compiler python server database query variable loop class module "
        "deploy test error debug api library install version commit branch merge script"
    ),
}
NEW_TOPIC = _split(
    "patient doctor symptoms fever medicine hospital nurse diagnosis treatment blood pressure surgery "
    "vaccine infection pain prescription clinic therapy heart disease dose allergy injury recovery"
)
OPENERS = ("Can you explain", "Please write about", "Summarize", "How do I handle", "Tell me about", "Help me with")
GERMAN = _split(
    "der die das und ist nicht ein eine ich du wir sie mit auf für von zu den dem sich auch es wie was "
    "bitte kannst erklären schreiben über warum heute morgen gut sehr haben werden können mehr noch nach "
    "beim Haus Arbeit Zeit Jahr Frage Antwort Beispiel Stadt Leute immer wieder schon zwischen"
)
HAN = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么"
REFUSALS = ("I'm sorry, but I can't help with that request.", "抱歉，我无法提供这方面的帮助。")
SHIFTS = ("no_shift", "new_vocabulary", "new_topic", "new_language", "longer_prompts")


def _zipf(n: int) -> np.ndarray:
    w: np.ndarray = 1.0 / (np.arange(n) + 2.7)
    out: np.ndarray = w / w.sum()
    return out


COMMON_P = _zipf(len(COMMON))
"""Zipf weights of :data:`COMMON`, most frequent first."""


def _invented(rng: np.random.Generator, n: int) -> list[str]:
    syllables = ("zor", "qua", "vex", "lir", "tum", "bax", "kro", "yel", "pim", "dra", "fen", "gox")
    return ["".join(rng.choice(syllables, size=int(rng.integers(2, 4)))) for _ in range(n)]


NEW_WORDS = _invented(np.random.default_rng(10_000), 60)
"""Invented words no reference window uses (the ``new_vocabulary`` shift)."""


def sentence(rng: np.random.Generator, length: int, topic: Sequence[str], topic_share: float = 0.3) -> list[str]:
    """``length`` words: common English words (Zipf) with a ``topic_share`` of ``topic``'s words mixed in."""
    common = rng.choice(COMMON, size=length, p=COMMON_P)
    topical = rng.choice(topic, size=length)
    use_topic = rng.random(length) < topic_share
    return [str(t if u else c) for c, t, u in zip(common, topical, use_topic, strict=True)]
