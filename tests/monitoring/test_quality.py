"""Quality signals per request, the refusal patterns and the toxicity lexicon."""

from __future__ import annotations

import pytest

from llmops.errors import InvalidInput
from llmops.monitoring.lexicon import is_refusal
from llmops.monitoring.quality import QualitySignals, assess
from llmops.monitoring.toxicity import LexiconToxicity, ToxicityResult

PROSE = (
    "The river rises in the northern hills and runs south through farmland before it reaches the coast, "
    "where a small harbour town has grown around the old bridge and the market square."
)


def test_a_plain_answer_raises_no_signal() -> None:
    signals = assess("Where does the river run?", PROSE, finish_reason="stop", latency=0.4, latency_objective=2.0)
    assert signals == QualitySignals(
        repetition=0.0,
        repetitive=False,
        refusal=False,
        pii_count=0,
        pii_types={},
        empty=False,
        truncated=False,
        latency_breached=False,
        toxicity=0.0,
        toxic=False,
        toxic_terms=[],
    )
    assert signals.to_dict()["latency_breached"] is False


def test_repetition_loop_is_repetitive_and_prose_is_not() -> None:
    loop = "I think that " + "the answer is yes and the answer is yes and " * 8
    looped = assess("q", loop)
    assert looped.repetition > 0.6 and looped.repetitive
    assert assess("q", PROSE).repetition < 0.05
    short = assess("q", "yes yes yes yes")  # two 3-grams: too short to judge
    assert short.repetition == 0.5 and not short.repetitive


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot provide instructions for that.",
        "As an AI language model, I cannot browse the internet.",
        "I must decline this request.",
        "I\u2019m unable to assist with this.",  # curly apostrophe
        "抱歉，我无法提供这方面的帮助。",
        "很抱歉，我不能回答这个问题。",
        "作为一个人工智能，我无法访问您的账户。",
        "我不能帮你完成这个任务。",
    ],
)
def test_refusals_in_english_and_chinese_are_recognised(text: str) -> None:
    assert is_refusal(text)
    assert assess("q", text).refusal


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        "Sorry for the delay! Here is the summary you asked for.",
        "You cannot divide by zero, so the function raises an error.",
        "很抱歉给您带来不便，下面是修改后的代码。",
        "Here is the plan. " + "x" * 500 + " I cannot help with that.",  # beyond the opening window
    ],
)
def test_non_refusals_are_not_flagged(text: str) -> None:
    assert not is_refusal(text)


def test_pii_in_the_output_is_counted_by_type() -> None:
    text = "Write to jane.doe@example.com or call +49 151 3272 2046; backup: ops@example.org."
    signals = assess("contact?", text)
    assert signals.pii_types == {"EMAIL": 2, "PHONE": 1}
    assert signals.pii_count == 3


def test_empty_truncated_and_latency() -> None:
    empty = assess("q", "  \n ", finish_reason="stop")
    assert empty.empty and not empty.truncated and empty.pii_count == 0
    cut = assess("q", PROSE, finish_reason="length", latency=3.5, latency_objective=2.0)
    assert cut.truncated and cut.latency_breached is True
    assert assess("q", PROSE, latency=2.0, latency_objective=2.0).latency_breached is False  # strictly above
    assert assess("q", PROSE, latency=9.0).latency_breached is None  # no objective: unknown, not "fine"


def test_bad_input_is_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="str"):
        assess("q", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="negative"):
        assess("q", "a", latency=-1.0, latency_objective=1.0)
    with pytest.raises(InvalidInput, match="positive"):
        assess("q", "a", latency=1.0, latency_objective=0.0)


def test_toxicity_lexicon_english_and_chinese() -> None:
    lexicon = LexiconToxicity()
    insult = lexicon.score("You are an idiot and a loser.")
    assert insult.score > 0.8 and insult.terms == ("loser", "you are an idiot")  # the longest phrase wins
    swear = lexicon.score("Damn, the build failed again.")
    assert 0 < swear.score < 0.5 and swear.terms == ("damn",)
    assert lexicon.score("你这个傻逼，去死吧").score > 0.9
    assert lexicon.score(PROSE) == ToxicityResult(0.0)
    assert lexicon.score("The scumble glaze and Scunthorpe are fine.").score == 0.0  # word boundaries
    signals = assess("q", "Shut up, you moron.")
    assert signals.toxic and signals.toxic_terms == ["moron", "shut up"]


def test_toxicity_lexicon_limits_are_real() -> None:
    """The documented limits: obfuscation is missed, Chinese substrings can hit innocent compounds."""
    lexicon = LexiconToxicity()
    assert lexicon.score("f*ck you, id1ot").score == 0.0
    assert lexicon.score("我们讨论废物利用的方法").score > 0  # 废物利用 = recycling


def test_a_classifier_plugs_in_and_extra_terms_extend_the_lexicon() -> None:
    class Always:
        def score(self, text: str) -> ToxicityResult:
            return ToxicityResult(0.75, ("model:insult",))

    signals = assess("q", PROSE, toxicity=Always())
    assert signals.toxic and signals.toxicity == 0.75 and signals.toxic_terms == ["model:insult"]
    extended = LexiconToxicity(extra_terms={"numpty": 0.6, "二货": 0.6})
    assert extended.score("what a Numpty").terms == ("numpty",)
    assert extended.score("你个二货").terms == ("二货",)
    with pytest.raises(ValueError, match="weight"):
        LexiconToxicity(extra_terms={"bad": 2.0})
