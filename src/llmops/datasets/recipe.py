"""Cleaning recipes: a YAML list of transform steps, validated before anything runs.

```yaml
name: clean-web-text
steps:
  - normalize: {}
  - filter: {length: {min: 20}, language: {allow: [en, zh]}}
  - dedup: {kind: minhash, threshold: 0.8}
  - pii: {}
  - split: {fractions: {train: 0.9, validation: 0.05, test: 0.05}, seed: 0}
```

Each step is a mapping with exactly one key, the step name; its value is the step's config (``{}`` or
nothing for defaults). Unknown keys anywhere are errors that name the key, the keys allowed there and the
line in the file, so a typo never silently turns a filter off. ``Recipe.model_dump()`` is the recipe with
every default filled in, and is what a dataset version records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from llmops.datasets.transforms.base import GlobalStep, RowStep
from llmops.datasets.transforms.dedup import ExactDedupConfig, MinHashDedupConfig, build_dedup
from llmops.datasets.transforms.filters import Filter, FilterConfig
from llmops.datasets.transforms.normalize import Normalize, NormalizeConfig
from llmops.datasets.transforms.pii import PiiConfig, RedactPii
from llmops.datasets.transforms.split import Split, SplitConfig
from llmops.errors import InvalidInput
from llmops.yamlspec import compose, line_of, loc_path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NormalizeStep(_Strict):
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)


class FilterStep(_Strict):
    filter: FilterConfig


class DedupStep(_Strict):
    dedup: Annotated[ExactDedupConfig | MinHashDedupConfig, Field(discriminator="kind")]


class PiiStep(_Strict):
    pii: PiiConfig = Field(default_factory=PiiConfig)


class SplitStep(_Strict):
    split: SplitConfig = Field(default_factory=SplitConfig)


STEP_MODELS: dict[str, type[BaseModel]] = {
    "normalize": NormalizeStep,
    "filter": FilterStep,
    "dedup": DedupStep,
    "pii": PiiStep,
    "split": SplitStep,
}


def _step_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


def step_problem(index: int, step: Any) -> str | None:
    """Why ``step`` (the raw ``steps[index]`` entry) is not a step, or None when its shape is right."""
    if isinstance(step, BaseModel):
        return None
    if not isinstance(step, dict) or len(step) != 1:
        return (
            f"steps[{index}] must be a mapping with exactly one key, the step name "
            f"({', '.join(STEP_MODELS)}), e.g. '- normalize: {{}}'; got {_short(step)}"
        )
    name, config = next(iter(step.items()))
    if name not in STEP_MODELS:
        return f"steps[{index}]: unknown step {name!r}; allowed steps: {', '.join(STEP_MODELS)}"
    if config is not None and not isinstance(config, dict):
        return f"steps[{index}].{name} must be a mapping of settings (or empty), got {_short(config)}"
    if name == "dedup" and (config is None or "kind" not in config):
        return f"steps[{index}].dedup needs 'kind: exact' or 'kind: minhash'"
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


StepSpec = Annotated[
    Annotated[NormalizeStep, Tag("normalize")]
    | Annotated[FilterStep, Tag("filter")]
    | Annotated[DedupStep, Tag("dedup")]
    | Annotated[PiiStep, Tag("pii")]
    | Annotated[SplitStep, Tag("split")],
    Discriminator(_step_name),
]


class Recipe(_Strict):
    """A validated cleaning recipe."""

    name: str | None = None
    description: str | None = None
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _check_steps(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return data
        steps = []
        for i, step in enumerate(data["steps"]):
            problem = step_problem(i, step)
            if problem is not None:
                raise ValueError(problem)
            if isinstance(step, dict):
                name, config = next(iter(step.items()))
                step = {name: {} if config is None else config}
            steps.append(step)
        return {**data, "steps": steps}

    def configs(self) -> list[tuple[str, BaseModel]]:
        """(step name, config) in order."""
        out: list[tuple[str, BaseModel]] = []
        for step in self.steps:
            name = next(iter(type(step).model_fields))
            out.append((name, getattr(step, name)))
        return out


def build_steps(recipe: Recipe) -> list[RowStep | GlobalStep]:
    """The transform objects of ``recipe``, in order."""
    steps: list[RowStep | GlobalStep] = []
    for name, config in recipe.configs():
        if name == "normalize":
            assert isinstance(config, NormalizeConfig)
            steps.append(Normalize(config))
        elif name == "filter":
            assert isinstance(config, FilterConfig)
            steps.append(Filter(config))
        elif name == "dedup":
            assert isinstance(config, ExactDedupConfig | MinHashDedupConfig)
            steps.append(build_dedup(config))
        elif name == "pii":
            assert isinstance(config, PiiConfig)
            steps.append(RedactPii(config))
        else:
            assert isinstance(config, SplitConfig)
            steps.append(Split(config))
    return steps


# --- loading YAML with errors that point at the line --------------------------------------------------
def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model whose field set applies at ``loc`` (to list the allowed keys)."""
    model: Any = Recipe
    i = 0
    while i < len(loc):
        part = loc[i]
        if part == "steps" and model is Recipe:
            if i + 2 < len(loc) and isinstance(loc[i + 2], str) and loc[i + 2] in STEP_MODELS:
                model = STEP_MODELS[str(loc[i + 2])]
                i += 3
                continue
            return None
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[str(part)].annotation
        candidates = [a for a in get_args(annotation) or (annotation,) if isinstance(a, type)]
        models = [a for a in candidates if issubclass(a, BaseModel)]
        if get_origin(annotation) is not None and not models:
            return None
        if not models:
            return None
        if len(models) > 1 and i + 1 < len(loc) and loc[i + 1] in ("exact", "minhash"):
            models = [m for m in models if m.model_fields["kind"].default == loc[i + 1]]
            i += 1
        model = models[0]
        i += 1
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` without pydantic's union tags (the step name repeated, the dedup kind)."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if i == 2 and loc[0] == "steps" and part in STEP_MODELS:
            continue
        if part in ("exact", "minhash") and out and out[-1] == "dedup":
            continue
        out.append(part)
    return tuple(out)


def _describe(error: dict[str, Any], root: yaml.Node | None) -> str:
    raw: tuple[int | str, ...] = tuple(error["loc"])
    loc = _clean_loc(raw)
    where, path = line_of(root, loc), loc_path(loc) or "recipe"
    if error["type"] == "extra_forbidden":
        where = line_of(root, loc, key=True)
        model = _model_at(raw[:-1])
        allowed = f"; allowed keys: {', '.join(model.model_fields)}" if model is not None else ""
        return f"{where}{path}: unknown key {loc[-1]!r}{allowed}"
    message = str(error["msg"]).removeprefix("Value error, ")
    got = f" (got {_short(error['input'])})" if loc and error["type"] != "missing" and "input" in error else ""
    return f"{where}{path}: {message}{got}"


def parse_recipe(text: str, source: str = "recipe") -> Recipe:
    """A ``Recipe`` from YAML text; ``InvalidInput`` naming every problem with its line."""
    root, data = compose(text, source)
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} must be a YAML mapping with a 'steps' list, got {type(data).__name__}")
    if isinstance(data.get("steps"), list):
        problems = [
            f"{line_of(root, ('steps', i))}{problem}"
            for i, step in enumerate(data["steps"])
            if (problem := step_problem(i, step)) is not None
        ]
        if problems:
            raise InvalidInput(f"{source} is invalid:\n  " + "\n  ".join(problems), details={"problems": problems})
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(dict(e), root) for e in exc.errors()]
        raise InvalidInput(f"{source} is invalid:\n  " + "\n  ".join(problems), details={"problems": problems}) from exc


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"recipe file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"recipe file {path} cannot be read: {exc}") from exc
    return parse_recipe(text, source=f"recipe {path}")
