from __future__ import annotations

from pathlib import Path

import pytest

from llmops.datasets.recipe import Recipe, build_steps, load_recipe, parse_recipe
from llmops.datasets.transforms.dedup import MinHashDedup
from llmops.errors import InvalidInput

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "recipes" / "clean.yaml"


def test_example_recipe_loads_with_defaults_filled() -> None:
    recipe = load_recipe(EXAMPLE)
    assert [name for name, _ in recipe.configs()] == ["normalize", "filter", "dedup", "dedup", "pii", "split"]
    dumped = recipe.model_dump(mode="json")
    assert dumped["steps"][3]["dedup"] == {
        "kind": "minhash", "threshold": 0.8, "num_perm": 128, "ngram": 5, "cjk_ngram": 5, "seed": 1,
    }  # fmt: skip
    assert Recipe.model_validate(dumped) == recipe  # the recorded recipe round-trips
    steps = build_steps(recipe)
    assert [s.name for s in steps] == ["normalize", "filter", "dedup", "dedup", "pii", "split"]
    assert isinstance(steps[3], MinHashDedup)


def test_empty_step_settings_mean_defaults() -> None:
    recipe = parse_recipe("steps:\n  - normalize:\n  - pii: {}\n  - split:\n")
    assert [name for name, _ in recipe.configs()] == ["normalize", "pii", "split"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - normalise: {}\n", "line 2: steps[0]: unknown step 'normalise'; allowed steps: normalize, filter"),
        (
            "steps:\n  - normalize: {}\n  - filter:\n      lenght: {min: 3}\n",
            "line 4: steps[1].filter.lenght: unknown key 'lenght'; allowed keys: length, language, script",
        ),
        (
            "steps:\n  - dedup: {kind: minhash, treshold: 0.9}\n",
            "line 2: steps[0].dedup.treshold: unknown key 'treshold'; allowed keys: kind, threshold, num_perm",
        ),
        (
            "steps:\n  - filter:\n      length: {min: 5, unti: chars}\n",
            "line 3: steps[0].filter.length.unti: unknown key 'unti'; allowed keys: unit, min, max, tokenizer",
        ),
        ("steps:\n  - normalize: {}\n  - dedup: {}\n", "line 3: steps[1].dedup needs 'kind: exact' or 'kind: minhash'"),
        ("steps:\n  - split: {fractions: {train: 0.5}}\n", "line 2: steps[0].split.fractions: fractions must sum to 1"),
        ("steps:\n  - pii: {types: [EMAIL, NAME]}\n", "steps[0].pii.types[1]: Input should be 'EMAIL'"),
        ("steps: []\n", "steps: List should have at least 1 item"),
        ("stepz:\n  - pii: {}\n", "line 1: stepz: unknown key 'stepz'; allowed keys: name, description, steps"),
        ("steps:\n  - normalize: 3\n", "steps[0].normalize must be a mapping of settings"),
        ("steps: [\n", "not valid YAML at line 2"),
        ("- normalize: {}\n", "must be a YAML mapping with a 'steps' list"),
    ],
)
def test_errors_name_key_allowed_keys_and_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_recipe(text)
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
