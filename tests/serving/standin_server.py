"""A stand-in for ``vllm serve``: takes its command line, serves /health and a minimal OpenAI API.

There is no GPU here, so the vllm engine's supervision and the upstream pass-through are tested against this
process (and ``benchmarks/gateway_overhead.py`` uses it as an upstream that answers at once). It accepts
``serve MODEL --served-model-name N --host H --port P`` plus any other flags (recorded, not interpreted),
writes its argv to ``$STANDIN_RECORD`` (one JSON line per start) and answers, in vLLM's shapes:

- ``POST /v1/completions`` and ``/v1/chat/completions``: the fixed text " from the stand-in" (4 tokens; the
  prompt counts one token per word), streamed as server-sent events when ``stream`` is true — chat: a role
  chunk, one chunk per token, a chunk with ``finish_reason``; then, only when
  ``stream_options.include_usage`` is set, a usage chunk with empty ``choices`` (and ``"usage": null`` on the
  other chunks, as vLLM sends them); then ``[DONE]``. A ``max_tokens`` over 4096 is vLLM's 400 error. Every
  JSON answer carries the body it received as ``standin_request``;
- ``POST /v1/embeddings``: 4-dimensional vectors;
- ``POST /tokenize`` (one token per word); no ``/detokenize`` (404).

``$STANDIN_TOKEN_DELAY`` (seconds) spaces the streamed chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKENS = [" from", " the", " stand", "-in"]
MAX_TOKENS = 4096


def words(body: dict[str, Any]) -> int:
    if "messages" in body:
        text = " ".join(str(m.get("content") or "") for m in body["messages"])
    else:
        prompt = body.get("prompt", body.get("input", ""))
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    return max(1, len(text.split()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("serve")
    parser.add_argument("model")
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    if os.environ.get("STANDIN_RECORD"):
        with open(os.environ["STANDIN_RECORD"], "a") as fh:
            fh.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid()}) + "\n")
    if os.environ.get("STANDIN_FAIL_START"):
        print("stand-in: failing on purpose", flush=True)
        sys.exit(3)
    time.sleep(float(os.environ.get("STANDIN_LOAD_SECONDS", "0.3")))  # "loading the model"
    delay = float(os.environ.get("STANDIN_TOKEN_DELAY", "0"))
    name = args.served_model_name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn and vLLM's server

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002 - the stdlib's name
            return

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": name, "object": "model", "max_model_len": 2048}]})
            else:
                self._json(404, {"error": {"message": "not found", "type": "NotFoundError", "code": 404}})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/v1/embeddings":
                inputs = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
                data = [
                    {"object": "embedding", "index": i, "embedding": [0.5, 0.5, 0.5, 0.5]} for i in range(len(inputs))
                ]
                n = words(body)
                usage = {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0}
                self._json(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})
                return
            if self.path == "/tokenize":
                n = words(body)
                self._json(200, {"count": n, "max_model_len": 2048, "tokens": list(range(n)), "token_strs": None})
                return
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError", "code": 404}})
                return
            if (body.get("max_tokens") or 0) > MAX_TOKENS:
                message = f"max_tokens {body['max_tokens']} is more than the model's context ({MAX_TOKENS})"
                error = {"message": message, "type": "BadRequestError", "param": "max_tokens", "code": 400}
                self._json(400, {"error": error})
                return
            chat = self.path == "/v1/chat/completions"
            usage = {"prompt_tokens": words(body), "completion_tokens": len(TOKENS)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            head = {
                "id": "chatcmpl-standin" if chat else "cmpl-standin",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()),
                "model": body.get("model", name),
            }
            if body.get("stream"):
                self._stream(body, head, chat, usage)
                return
            if chat:
                message = {"role": "assistant", "content": "".join(TOKENS)}
                choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                head["object"] = "chat.completion"
            else:
                choice = {"index": 0, "text": "".join(TOKENS), "logprobs": None, "finish_reason": "stop"}
            self._json(200, {**head, "choices": [choice], "usage": usage, "standin_request": body})

        def _stream(self, body: dict[str, Any], head: dict[str, Any], chat: bool, usage: dict[str, int]) -> None:
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            def send(chunk: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()

            extra = {"usage": None} if include else {}

            def choice(text: str | None, finish: str | None) -> dict[str, Any]:
                if chat:
                    delta = {"role": "assistant", "content": ""} if text is None else {"content": text}
                    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish, "stop_reason": None}

            try:
                if chat:
                    send({**head, "choices": [choice(None, None)], **extra})
                for token in TOKENS:
                    time.sleep(delay)
                    send({**head, "choices": [choice(token, None)], **extra})
                send({**head, "choices": [choice("", "stop")], **extra})
                if include:
                    send({**head, "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    print(f"stand-in serving {args.model} as {name} on {args.host}:{args.port}", flush=True)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
