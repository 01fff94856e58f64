"""A seeded generator of prompt/completion windows, with planted shifts for the drift tests.

Prompts are an opener ("Can you explain", ...) followed by words drawn from a small English vocabulary
(Zipf weights) mixed with words of one of the baseline topics; completions are a few sentences of the same
mix, a few percent of them refusals. Shifts change one thing:

- ``new_vocabulary``: a fifth of each prompt's words come from invented words the reference never used;
- ``new_topic``: half the prompts are about a topic absent from the reference, in ordinary English words;
- ``new_language``: 30 % of the prompts are German or Chinese;
- ``longer_prompts``: prompts are about twice as long.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmops.monitoring.drift import Window


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
        "island map journey visa trip hostel mountains guide vacation cruise border luggage"
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


_COMMON_P = _zipf(len(COMMON))


def _invented(rng: np.random.Generator, n: int) -> list[str]:
    syllables = ("zor", "qua", "vex", "lir", "tum", "bax", "kro", "yel", "pim", "dra", "fen", "gox")
    return ["".join(rng.choice(syllables, size=int(rng.integers(2, 4)))) for _ in range(n)]


def _sentence(rng: np.random.Generator, length: int, topic: tuple[str, ...], topic_share: float = 0.3) -> list[str]:
    common = rng.choice(COMMON, size=length, p=_COMMON_P)
    topical = rng.choice(topic, size=length)
    use_topic = rng.random(length) < topic_share
    return [str(t if u else c) for c, t, u in zip(common, topical, use_topic, strict=True)]


def make_window(shift: str, n: int, seed: int, *, completions: bool = True) -> Window:
    """``n`` requests drawn with ``seed``; ``shift`` is one of :data:`SHIFTS`."""
    if shift not in SHIFTS:
        raise ValueError(shift)
    rng = np.random.default_rng(seed)
    new_words = _invented(np.random.default_rng(10_000), 60)
    topic_names = list(TOPICS)
    prompts: list[str] = []
    answers: list[str] = []
    for _ in range(n):
        topic = TOPICS[topic_names[int(rng.integers(len(topic_names)))]]
        if shift == "new_topic" and rng.random() < 0.5:
            topic = NEW_TOPIC
        length = int(np.clip(rng.lognormal(np.log(18), 0.45), 4, 120))
        if shift == "longer_prompts":
            length *= 2
        opener = OPENERS[int(rng.integers(len(OPENERS)))]
        roll = rng.random()
        if shift == "new_language" and roll < 0.15:
            prompt = " ".join(rng.choice(GERMAN, size=length).tolist()).capitalize() + "?"
        elif shift == "new_language" and roll < 0.30:
            prompt = "".join(rng.choice(list(HAN), size=length * 2).tolist()) + "？"
        else:
            tokens = _sentence(rng, length, topic)
            if shift == "new_vocabulary":
                for i in np.flatnonzero(rng.random(length) < 0.2):
                    tokens[i] = str(new_words[int(rng.integers(len(new_words)))])
            prompt = f"{opener} {' '.join(tokens)}?"
        prompts.append(prompt)
        if completions:
            if rng.random() < 0.03:
                answers.append(REFUSALS[int(rng.integers(2))])
            else:
                sentences = int(rng.integers(2, 6))
                answers.append(
                    " ".join(
                        " ".join(_sentence(rng, int(rng.integers(6, 16)), topic)).capitalize() + "."
                        for _ in range(sentences)
                    )
                )
    return Window(prompts=tuple(prompts), completions=tuple(answers), label=f"{shift}:{seed}")


@pytest.fixture(scope="session")
def window_factory() -> object:
    return make_window
