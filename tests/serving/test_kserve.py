"""The KServe V2 (Open Inference Protocol) API end to end: Triton's ``tritonclient.http``, unmodified and with its
default settings (binary tensors), against a real uvicorn server.

One server per module: two tiny Llamas (``lm:1``, ``lm:2``) and the shipped MiniLM (``emb:1``) deployed as
``chat`` (lm:1, canary lm:2 at 50 %), ``scoped`` (lm:1, key scope ``team-a``) and ``emb`` (embeddings).
Outputs are checked against ``/v1/completions`` and ``/v1/embeddings`` for the same inputs and parameters.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.serving.deployments.routing import choose_route
from llmops.serving.manager import EngineManager
from tests.serving.server import platform_with_models, serve

PARAMS = {"max_tokens": 8, "temperature": 0}


@dataclass
class Gateway:
    url: str
    platform: Platform
    keys: dict[str, str]
    client: triton.InferenceServerClient

    def auth(self, who: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def triton(self) -> triton.InferenceServerClient:
        return self.client

    def completion(self, prompt: str | list[str], who: str = "alice", **params: Any) -> list[str]:
        body = {"model": "chat", "prompt": prompt, **PARAMS, **params}
        r = httpx.post(f"{self.url}/v1/completions", json=body, headers=self.auth(who), timeout=60)
        assert r.status_code == 200, r.text
        return [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])]

    def post(self, path: str, body: Any, who: str | None = "alice", **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**(self.auth(who) if who else {}), **headers}
        return httpx.post(f"{self.url}{path}", content=content, headers=sent, timeout=60)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("kserve")
    platform, admin = platform_with_models(home, llama_dir)
    d = platform.deployments
    d.deploy(admin, "chat", model="lm:1")
    d.set_route(admin, "chat", mode="canary", model="lm:2", percent=50)
    d.deploy(admin, "scoped", model="lm:1", scopes=["team-a"])
    d.deploy(admin, "emb", model="emb:1", engine="embeddings")
    security = platform.security
    security.create_principal(admin, "alice")
    security.create_principal(admin, "bob")
    keys = {
        "alice": security.create_key(admin, principal="alice").key,
        "bob": security.create_key(admin, principal="bob", name="scoped", scopes=["team-a"]).key,
    }
    manager = EngineManager(platform.deployments, platform.model_cache, interval=0.2, drain_timeout=0.0)
    with serve(create_app(platform=platform, engines=manager)) as url:
        client = triton.InferenceServerClient(url=url.removeprefix("http://"), network_timeout=60.0)
        yield Gateway(url, platform, keys, client)
        client.close()
    platform.close()


def text_input(prompts: list[bytes], binary_data: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("text_input", [len(prompts)], "BYTES")
    tensor.set_data_from_numpy(np.array(prompts, dtype=object), binary_data=binary_data)
    return tensor


def user_on(gateway: Gateway, mode: str) -> str:
    spec = gateway.platform.deployments.get("chat").spec
    return next(u for u in (f"user{i}" for i in range(200)) if choose_route("chat", spec, u).mode == mode)


# --- server ---------------------------------------------------------------------------------------------------
def test_server_health_and_metadata(gateway: Gateway) -> None:
    client = gateway.triton()
    assert client.is_server_live(headers=gateway.auth())
    assert client.is_server_ready(headers=gateway.auth())
    meta = client.get_server_metadata(headers=gateway.auth())
    assert meta["name"] == "llmops" and meta["version"] and "binary_tensor_data" in meta["extensions"]
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):  # probes need no key
        assert httpx.get(f"{gateway.url}{path}").status_code == 200


def test_model_metadata_and_readiness(gateway: Gateway) -> None:
    client = gateway.triton()
    meta = client.get_model_metadata("chat", headers=gateway.auth())
    assert meta["name"] == "chat" and meta["versions"] == ["1", "2"] and meta["platform"] == "llmops_torch"
    assert meta["inputs"] == [{"name": "text_input", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}]
    assert {"max_tokens", "temperature", "top_p", "top_k", "seed", "stop"} <= set(meta["parameters"])
    assert client.get_model_metadata("chat", "2", headers=gateway.auth())["versions"] == ["2"]
    assert client.get_model_metadata("chat", "lm:1", headers=gateway.auth())["versions"] == ["1"]
    emb = client.get_model_metadata("emb", headers=gateway.auth())
    assert emb["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]

    assert client.is_model_ready("chat", headers=gateway.auth())
    assert client.is_model_ready("chat", "2", headers=gateway.auth())
    assert not client.is_model_ready("chat", "9", headers=gateway.auth())
    assert not client.is_model_ready("ghost", headers=gateway.auth())
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("chat", "9", headers=gateway.auth())
    assert missing.value.status() == "404" and "no version 9" in str(missing.value.message())


# --- inference ------------------------------------------------------------------------------------------------
def test_infer_binary_default_equals_openai_completion(gateway: Gateway) -> None:
    prompt = "the quick brown"
    result = gateway.triton().infer(
        "chat", [text_input([prompt.encode()])], parameters=PARAMS, headers=gateway.auth(), request_id="r-1"
    )
    out = result.as_numpy("text_output")
    assert out is not None and out.shape == (1,) and out.dtype == object
    assert out[0].decode() == gateway.completion(prompt)[0]  # same key, so the same sticky route
    response = result.get_response()
    assert response["model_name"] == "chat" and response["model_version"] in ("1", "2") and response["id"] == "r-1"
    assert response["parameters"]["completion_tokens"] <= 8 and response["parameters"]["prompt_tokens"] > 0
    assert result.get_output("text_output")["parameters"]["binary_data_size"] == 4 + len(out[0])

    body, length_header = binary_body([prompt.encode()], {"binary_data_output": True, **PARAMS})
    raw = gateway.post("/v2/models/chat/infer", body, **length_header)  # what tritonclient sends, by hand
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/octet-stream"
    n = int(raw.headers["inference-header-content-length"])
    header = json.loads(raw.content[:n])
    size = header["outputs"][0]["parameters"]["binary_data_size"]
    (length,) = struct.unpack_from("<I", raw.content, n)
    assert len(raw.content) == n + size and raw.content[n + 4 : n + 4 + length].decode() == out[0].decode()
    assert raw.headers["x-llmops-version"] in ("lm:1", "lm:2") and raw.headers["x-request-id"]


def binary_body(prompts: list[bytes], parameters: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A request as ``tritonclient`` encodes it: the JSON header, then the BYTES tensor; and the length header."""
    size = sum(4 + len(p) for p in prompts)
    tensor = {"name": "text_input", "shape": [len(prompts)], "datatype": "BYTES"}
    header = json.dumps(
        {"inputs": [{**tensor, "parameters": {"binary_data_size": size}}], "parameters": parameters}
    ).encode()
    data = b"".join(struct.pack("<I", len(p)) + p for p in prompts)
    return header + data, {"Inference-Header-Content-Length": str(len(header))}


def test_infer_json_tensors(gateway: Gateway) -> None:
    prompt = "hello there"
    outputs = [triton.InferRequestedOutput("text_output", binary_data=False)]
    result = gateway.triton().infer(
        "chat",
        [text_input([prompt.encode()], binary_data=False)],
        outputs=outputs,
        parameters=PARAMS,
        headers=gateway.auth(),
    )
    out = result.as_numpy("text_output")
    assert out is not None and list(out) == gateway.completion(prompt)

    body = {
        "inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": [prompt]}],
        "parameters": PARAMS,
    }
    raw = gateway.post("/v2/models/chat/infer", body)
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in raw.headers
    tensor = raw.json()["outputs"][0]
    assert tensor == {"name": "text_output", "datatype": "BYTES", "shape": [1], "data": list(out)}

    zipped = gateway.triton().infer(  # tritonclient's request compression
        "chat",
        [text_input([prompt.encode()])],
        parameters=PARAMS,
        headers=gateway.auth(),
        request_compression_algorithm="gzip",
    )
    assert zipped.as_numpy("text_output")[0].decode() == out[0]


def test_infer_a_batch_of_two_prompts(gateway: Gateway) -> None:
    prompts = ["one two", "a b c d"]
    result = gateway.triton().infer(
        "chat",
        [text_input([p.encode() for p in prompts])],
        parameters={**PARAMS, "max_tokens": 5},
        headers=gateway.auth(),
    )
    out = result.as_numpy("text_output")
    assert out is not None and out.shape == (2,)
    assert [x.decode() for x in out] == gateway.completion(prompts, max_tokens=5)
    assert [x.decode() for x in out] == [gateway.completion(p, max_tokens=5)[0] for p in prompts]

    nested = {  # shape [2, 1], nested JSON data: the output keeps the input's shape
        "inputs": [{"name": "text_input", "shape": [2, 1], "datatype": "BYTES", "data": [[prompts[0]], [prompts[1]]]}],
        "parameters": {**PARAMS, "max_tokens": 5},
    }
    tensor = gateway.post("/v2/models/chat/infer", nested).json()["outputs"][0]
    assert tensor["shape"] == [2, 1] and tensor["data"] == [x.decode() for x in out]


def test_version_path_pins_the_route(gateway: Gateway) -> None:
    client = gateway.triton()
    canary_user, primary_user = user_on(gateway, "canary"), user_on(gateway, "primary")
    prompt = "pinned"
    for version, user in (("1", canary_user), ("2", primary_user)):  # the pin wins over the sticky choice
        params = {**PARAMS, "user": user}
        result = client.infer(
            "chat", [text_input([prompt.encode()])], model_version=version, parameters=params, headers=gateway.auth()
        )
        assert result.get_response()["model_version"] == version
        other = primary_user if version == "1" else canary_user  # a user the router sends to this version
        assert result.as_numpy("text_output")[0].decode() == gateway.completion(prompt, user=other)[0]
        raw = gateway.post(
            f"/v2/models/chat/versions/{version}/infer",
            {
                "inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": [prompt]}],
                "parameters": params,
            },
        )
        assert raw.headers["x-llmops-version"] == f"lm:{version}"
    missing = gateway.post(
        "/v2/models/chat/versions/9/infer",
        {"inputs": [{"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert missing.status_code == 404 and "no version 9" in missing.json()["error"]


def test_infer_embeddings(gateway: Gateway) -> None:
    texts = ["a cat sat", "on the mat"]
    result = gateway.triton().infer("emb", [text_input([t.encode() for t in texts])], headers=gateway.auth())
    vectors = result.as_numpy("embedding")
    assert vectors is not None and vectors.shape == (2, 384) and vectors.dtype == np.float32
    r = httpx.post(f"{gateway.url}/v1/embeddings", json={"model": "emb", "input": texts}, headers=gateway.auth())
    reference = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    assert np.allclose(vectors, reference, atol=1e-6)


# --- errors ---------------------------------------------------------------------------------------------------
def test_errors_have_the_protocol_shape(gateway: Gateway) -> None:
    tensor = {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["x"]}

    def refused(response: httpx.Response, status: int, *words: str) -> None:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"], str)
        assert all(w in body["error"] for w in words), body["error"]

    refused(gateway.post("/v2/models/ghost/infer", {"inputs": [tensor]}), 404, "ghost")
    refused(httpx.get(f"{gateway.url}/v2/models/ghost", headers=gateway.auth()), 404)
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [tensor]}, who=None), 401)
    refused(httpx.get(f"{gateway.url}/v2/models/chat"), 401)
    bad = {"name": "text_input", "shape": [1], "datatype": "INT32", "data": [3]}
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [bad]}), 400, "BYTES")
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [{**bad, "datatype": "TEXT"}]}), 400, "datatype")
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [{**tensor, "name": "prompt"}]}), 400, "prompt")
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [{**tensor, "shape": [2]}]}), 400, "shape")
    refused(gateway.post("/v2/models/chat/infer", b"{nope"), 400, "JSON")
    refused(
        gateway.post("/v2/models/chat/infer", {"inputs": [tensor], "parameters": {"max_token": 3}}), 400, "max_token"
    )
    refused(
        gateway.post("/v2/models/chat/infer", {"inputs": [tensor], "parameters": {"max_tokens": -1}}), 400, "max_tokens"
    )
    refused(gateway.post("/v2/models/chat/infer", {"inputs": [tensor], "outputs": [{"name": "logits"}]}), 400, "logits")
    body, length_header = binary_body([b"hello"], {})
    refused(gateway.post("/v2/models/chat/infer", body, **{"Inference-Header-Content-Length": "9999"}), 400, "9999")
    truncated = body[:-3]  # the tensor says 9 bytes, 6 remain
    refused(gateway.post("/v2/models/chat/infer", truncated, **length_header), 400, "binary_data_size")
    refused(gateway.post("/v2/models/chat/infer", body + b"xx", **length_header), 400, "2 bytes")
    refused(
        gateway.post(
            "/v2/models/chat/infer", {"inputs": [{**tensor, "data": ["x" * 2000]}], "parameters": {"max_tokens": 100}}
        ),
        400,
    )  # over the context
    scoped = gateway.post("/v2/models/scoped/infer", {"inputs": [tensor], "parameters": {"max_tokens": 2}})
    refused(scoped, 403, "scope")
    refused(httpx.get(f"{gateway.url}/v2/models/scoped", headers=gateway.auth()), 404)
    ok = gateway.post("/v2/models/scoped/infer", {"inputs": [tensor], "parameters": {"max_tokens": 2}}, who="bob")
    assert ok.status_code == 200 and ok.json()["outputs"][0]["name"] == "text_output"

    with pytest.raises(InferenceServerException) as unknown:  # tritonclient reads the message and the status
        gateway.triton().infer("ghost", [text_input([b"x"])], headers=gateway.auth())
    assert unknown.value.status() == "404" and "ghost" in str(unknown.value.message())
