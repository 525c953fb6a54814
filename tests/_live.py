"""Real servers for tests: ``qa serve`` in a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator, Mapping

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free loopback port: any, or one of ``QA_TEST_PORTS`` ("7900-7999") on a machine where
    each user of it keeps to a range of ports."""
    wanted = os.environ.get("QA_TEST_PORTS", "")
    low, _, high = wanted.partition("-")
    candidates = range(int(low), int(high or low) + 1) if low else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port in QA_TEST_PORTS={wanted}")


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling interval, not synchronisation: the loop checks the real state
    raise TimeoutError(f"{url} did not come up within {timeout} s")


@contextlib.contextmanager
def qa_server(index_dir: Path, upload_dir: Path | None = None, env: Mapping[str, str] | None = None,
              log: Path | None = None, wait_for: str = "/healthz", port: int | None = None) -> Iterator[str]:
    """Run ``qa serve`` over ``index_dir`` and yield its base URL once ``wait_for`` answers 200
    ("/readyz": the model and the index are loaded too); stopped on exit. ``port`` (see
    :func:`port_in`) lets a test start a server again where a stopped one listened."""
    port = port or free_port()
    environment = {
        **os.environ,
        "QA_INDEX_DIR": str(index_dir),
        "QA_INDEX_UPLOAD_DIR": str(upload_dir or index_dir.parent / "uploads"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    output = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}{wait_for}", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            output.close()


def port_in(low: int, high: int) -> int:
    """A loopback port from ``low``–``high`` that nothing listens on. Unlike :func:`free_port` it
    takes a port a stopped server left connections in TIME_WAIT on, so a server can be started
    again on the port it had (the page's origin, and so its localStorage, stays the same)."""
    for port in range(low, high + 1):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def uploaded(base_url: str, name: str, text: str) -> str:
    """Index one article through the HTTP API, as another client would; its article id."""
    response = httpx.post(f"{base_url}/v1/documents", files=[("files", (name, text.encode()))], timeout=60)
    assert response.status_code == 201, response.text
    return response.json()["documents"][0]["id"]


def indexed_docs(base_url: str) -> set[str]:
    return {d["doc"] for d in httpx.get(f"{base_url}/v1/documents", timeout=30).json()["documents"]}


def event_stream_lines(stream: httpx.Response) -> Iterator[str]:
    """The lines of a Server-Sent Events stream, split where the SSE format splits them: at CR,
    LF or CRLF only. httpx's ``iter_lines`` splits at U+0085 and U+2028 too, which an event's JSON
    carries unescaped when an answer quotes them."""
    pending = ""
    for text in stream.iter_text():
        *lines, pending = re.split(r"\r\n|\r|\n", pending + text)
        yield from lines
    if pending:
        yield pending


class GradioPage:
    """A Gradio page's event table, read from its ``/config`` as the browser reads it."""

    def __init__(self, base: str, timeout: float) -> None:
        self.http = httpx.Client(base_url=base, timeout=timeout)
        config = self.http.get("/config").json()
        self.dependencies = config["dependencies"]
        self.components = {c["id"]: c for c in config["components"]}

    def fn_index(self, elem_id: str, event: str) -> int:
        for dependency in self.dependencies:
            for target, name in dependency["targets"]:
                if name == event and self.components.get(target, {}).get("props", {}).get("elem_id") == elem_id:
                    return dependency["id"]
        raise LookupError(f"no {event} event on #{elem_id}")

    def event_index(self, component_type: str, event: str) -> int:
        """The first ``event`` of a component of ``component_type`` (e.g. a ``gr.State``'s change)."""
        for dependency in self.dependencies:
            for target, name in dependency["targets"]:
                if name == event and self.components.get(target, {}).get("type") == component_type:
                    return dependency["id"]
        raise LookupError(f"no {event} event on a {component_type}")

    def load_index(self, input_type: str) -> int:
        """The page-load event that reads a component of ``input_type`` (e.g. "browserstate")."""
        for dependency in self.dependencies:
            if any(name == "load" for _, name in dependency["targets"]) and any(
                    self.components[i]["type"] == input_type for i in dependency["inputs"]):
                return dependency["id"]
        raise LookupError(f"no load event reads a {input_type}")


class GradioSession(GradioPage):
    """One browser tab's session with a Gradio page: its events called as the page calls them
    (``queue/join``, then the ``queue/data`` stream) under one session hash, so what the server
    keeps per session (``gr.State``, choices a load event set) carries from one event to the next."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        super().__init__(base, timeout)
        self.timeout = timeout
        self.session = uuid.uuid4().hex

    def open_page(self) -> None:
        """What the page does once it is open: run every load event, in order."""
        for dependency in self.dependencies:
            if any(name == "load" for _, name in dependency["targets"]):
                self.call(dependency["id"], [None] * len(dependency["inputs"]))

    def call(self, fn_index: int, data: list, event_data: dict | None = None) -> list:
        """The event's outputs; AssertionError with Gradio's message when the event failed.
        ``event_data`` is what the page's script sends with an event it triggers itself."""
        joined = self.http.post("/gradio_api/queue/join", json={
            "fn_index": fn_index, "session_hash": self.session, "trigger_id": None, "event_data": event_data,
            "data": data})
        assert joined.status_code == 200, joined.text
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in event_stream_lines(stream):
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        assert message["success"], message["output"]
                        return message["output"]["data"]
        raise AssertionError(f"event {fn_index} never completed")

    def close(self) -> None:
        self.http.close()


class ChromaServer:
    """A real ``chroma run`` on a free loopback port, which a test can stop and start again."""

    def __init__(self, path: Path, log: Path | None = None) -> None:
        self.path = path
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment that points ``qa`` at this server."""
        return {"QA_VECTOR_STORE_MODE": "http", "QA_VECTOR_STORE_HOST": "127.0.0.1",
                "QA_VECTOR_STORE_PORT": str(self.port)}

    def start(self) -> None:
        chroma = Path(sys.executable).with_name("chroma")
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(chroma), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=output, stderr=subprocess.STDOUT,
        )
        wait_until_up(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", self.process, timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextlib.contextmanager
def chroma_server(path: Path, log: Path | None = None) -> Iterator[ChromaServer]:
    server = ChromaServer(path, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()
