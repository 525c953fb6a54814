"""Real servers for tests: ``qa serve`` in a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
              log: Path | None = None, wait_for: str = "/healthz") -> Iterator[str]:
    """Run ``qa serve`` over ``index_dir`` and yield its base URL once ``wait_for`` answers 200
    ("/readyz": the model and the index are loaded too); stopped on exit."""
    port = free_port()
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
