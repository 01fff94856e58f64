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
from tests.monitoring.planted import GERMAN, HAN, NEW_TOPIC, NEW_WORDS, OPENERS, REFUSALS, SHIFTS, TOPICS, sentence


def make_window(shift: str, n: int, seed: int, *, completions: bool = True) -> Window:
    """``n`` requests drawn with ``seed``; ``shift`` is one of :data:`SHIFTS`."""
    if shift not in SHIFTS:
        raise ValueError(shift)
    rng = np.random.default_rng(seed)
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
            tokens = sentence(rng, length, topic)
            if shift == "new_vocabulary":
                for i in np.flatnonzero(rng.random(length) < 0.2):
                    tokens[i] = str(NEW_WORDS[int(rng.integers(len(NEW_WORDS)))])
            prompt = f"{opener} {' '.join(tokens)}?"
        prompts.append(prompt)
        if completions:
            if rng.random() < 0.03:
                answers.append(REFUSALS[int(rng.integers(2))])
            else:
                sentences = int(rng.integers(2, 6))
                answers.append(
                    " ".join(
                        " ".join(sentence(rng, int(rng.integers(6, 16)), topic)).capitalize() + "."
                        for _ in range(sentences)
                    )
                )
    return Window(prompts=tuple(prompts), completions=tuple(answers), label=f"{shift}:{seed}")


@pytest.fixture(scope="session")
def window_factory() -> object:
    return make_window
