"""Request models of the Open Inference Protocol (KServe V2) and the tensors a text deployment takes and returns.

A generation deployment takes one BYTES input, ``text_input`` (one UTF-8 prompt per element, any shape), and
returns one BYTES output, ``text_output``, of the same shape (the completion of each prompt, without the
prompt). An embeddings deployment returns ``embedding``, FP32 ``[prompts, dimension]``. Generation parameters
travel in the request's ``parameters`` (``GENERATION_PARAMETERS``); the protocol's own parameters (Triton's
``binary_data_output``, ``priority``, ``timeout``, sequence fields) are accepted and have no effect beyond the
binary output choice; anything else is refused with a 400 rather than ignored.

Responses are plain dictionaries built in ``serving`` (as in the OpenAI layer).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.errors import InvalidInput

#: The datatypes the protocol defines (a tensor naming another one is malformed).
DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BF16", "BYTES"}
)

TEXT_INPUT = "text_input"
TEXT_OUTPUT = "text_output"
EMBEDDING_OUTPUT = "embedding"

#: Request parameters that become completion fields (the OpenAI layer validates their values).
GENERATION_PARAMETERS: dict[str, str] = {
    "max_tokens": "integer >= 1, default 16",
    "temperature": "0..2, default 1 (0 is greedy)",
    "top_p": "(0, 1], default 1",
    "top_k": "integer, 0 or -1 for all, default 0",
    "seed": "integer, reproducible sampling",
    "stop": "a stop string (or a list of them)",
    "user": "who the request is for; keeps the caller on one route",
    "ignore_eos": "boolean, generate max_tokens even past end of sequence",
}
#: Parameters the protocol (or Triton's client) defines; accepted, with no effect on generation.
PROTOCOL_PARAMETERS = frozenset(
    {"binary_data_output", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
)
#: Tensor parameters the binary tensor data extension defines.
TENSOR_PARAMETERS = frozenset({"binary_data_size", "binary_data"})

Scalar = bool | int | float | str
Name = Annotated[str, Field(min_length=1, max_length=128)]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InferInputTensor(Lenient):
    """An input tensor: its data inline (``data``, row-major, possibly nested) or in the binary part of the body."""

    name: Name
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: dict[str, Scalar] = Field(default_factory=dict)
    data: Any = None


class InferOutputRequest(Lenient):
    """A requested output; ``parameters.binary_data`` asks for it in the binary part of the response."""

    name: Name
    parameters: dict[str, Scalar] = Field(default_factory=dict)


class InferRequest(Lenient):
    id: Annotated[str, Field(max_length=256)] | None = None
    parameters: dict[str, Scalar | list[str]] = Field(default_factory=dict)
    inputs: Annotated[list[InferInputTensor], Field(min_length=1)]
    outputs: list[InferOutputRequest] | None = None


class KServeError(BaseModel):
    """The body of every KServe V2 error."""

    error: str


def describe(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one line: ``where: what; ...`` (the first five)."""
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if not (isinstance(p, str) and "[" in p)) or "body"
        parts.append(f"{prefix}{where}: {str(e.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def parse_request(header: bytes) -> InferRequest:
    """The JSON inference request; malformed JSON or a wrong field is an ``InvalidInput`` (400)."""
    try:
        return InferRequest.model_validate_json(header)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise InvalidInput("the inference request is not valid JSON") from None
        raise InvalidInput(f"invalid inference request: {describe(exc)}") from None


def tensor_metadata(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape}


__all__ = [
    "DATATYPES",
    "KServeError",
    "EMBEDDING_OUTPUT",
    "GENERATION_PARAMETERS",
    "PROTOCOL_PARAMETERS",
    "TENSOR_PARAMETERS",
    "TEXT_INPUT",
    "TEXT_OUTPUT",
    "describe",
    "parse_request",
    "InferInputTensor",
    "InferOutputRequest",
    "InferRequest",
    "tensor_metadata",
]
