"""A tiny OpenAI-compatible chat server on loopback that plays a script, for exact LLM cases.

Each request to ``/v1/chat/completions`` takes the next step of the script: a reply given
as stream chunks (sent as Server-Sent Events, or joined into one JSON body when the client
did not ask for a stream), an HTTP error status, or a hang that outlasts the client's
timeout. Every request body is kept in ``requests`` so tests can read the prompt.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_ID = "scripted-model"


@dataclass
class Reply:
    chunks: list[str]


@dataclass
class FirstToken:
    """A one-token reply whose top alternatives carry these probabilities (as logprobs), as a
    server answers ``max_tokens=1, logprobs=true, top_logprobs=n``; ``logprobs=False`` sends none."""

    probabilities: dict[str, float]
    logprobs: bool = True


@dataclass
class Status:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    """Accept the request and send nothing (``after_chunks`` first, when given) until the server stops."""

    after_chunks: list[str] = field(default_factory=list)


class ScriptedLLM:
    def __init__(self) -> None:
        self.script: deque[Reply | FirstToken | Status | Hang] = deque()
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def play(self, *steps: Reply | FirstToken | Status | Hang) -> None:
        self.script.clear()
        self.requests.clear()
        self.script.extend(steps)

    def start(self) -> "ScriptedLLM":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _json(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model",
                                                                  "created": 0, "owned_by": "tests"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                scripted.requests.append(body)
                if not scripted.script:
                    self._json(500, {"error": {"message": "the test script has no step left"}})
                    return
                step = scripted.script.popleft()
                if isinstance(step, Status):
                    self._json(step.status, {"error": {"message": f"scripted {step.status}"}}, step.headers)
                elif isinstance(step, Hang) and not step.after_chunks:
                    scripted.stopping.wait(60)
                elif isinstance(step, FirstToken):
                    self._first_token(step)
                elif body.get("stream"):
                    self._stream(step.chunks if isinstance(step, Reply) else step.after_chunks,
                                 hang=isinstance(step, Hang))
                else:
                    message = {"role": "assistant", "content": "".join(step.chunks)}
                    self._json(200, {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": MODEL_ID,
                                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

            def _first_token(self, step: FirstToken) -> None:
                ranked = sorted(step.probabilities.items(), key=lambda item: -item[1])
                choice = {"index": 0, "message": {"role": "assistant", "content": ranked[0][0]}, "finish_reason": "length"}
                if step.logprobs:
                    alternatives = [{"token": token, "logprob": math.log(p), "bytes": None} for token, p in ranked]
                    choice["logprobs"] = {"content": [{**alternatives[0], "top_logprobs": alternatives}]}
                self._json(200, {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": MODEL_ID,
                                 "choices": [choice]})

            def _stream(self, chunks: list[str], hang: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")  # the stream ends when the connection does
                self.end_headers()
                pieces = [{"role": "assistant", "content": ""}] + [{"content": c} for c in chunks]
                for delta in pieces:
                    event = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL_ID,
                             "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                if hang:
                    scripted.stopping.wait(60)
                    return
                final = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL_ID,
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        return Handler
