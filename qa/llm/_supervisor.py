"""The ``llama_cpp`` and ``local`` backends: a GGUF run by a child process that ``qa`` supervises.

Why a child: llama.cpp is native code. A segfault in it (issue 14: AMX buffer types on some
CPUs) ends, and an endless loop freezes, whatever process runs the model; in a child it ends
only the child, and the server answers extractively meanwhile. The child is
:mod:`qa.llm.local_server` (llama-cpp-python's OpenAI-compatible server), reached through the
``openai`` backend's client on loopback.

- **Start.** A socket bound here on 127.0.0.1, port 0, is handed to the child (no race for the
  port); its output goes to a log file. The model is ready when ``/v1/models`` answers; a child
  that exits first, or does not answer within :data:`STARTUP_TIMEOUT_S`, is a
  :class:`ConfigError` quoting the end of its log.
- **Dying together.** The child asks the kernel for SIGKILL when the thread that started it ends
  (``PR_SET_PDEATHSIG``); all children are started from one thread that lives as long as this
  process, so that means: when this process ends, however it ends. :meth:`SupervisedChatModel.close`
  (and, failing that, garbage collection or interpreter exit) stops it before.
- **Answering.** One request at a time: the child generates one answer at a time anyway, and
  llama-cpp-python's server would cut a running stream short for a new request. Its keep-alive
  pings are off, so the client's read timeout (``llm.timeout_s``) means exactly "no token for
  ``timeout_s``".
- **Crash or hang.** A child that died (any signal), or produced no token in time (then killed),
  fails the request with :class:`LLMError` — the answer path gives the extractive answer with a
  notice — and is reaped; a new child starts at once for the next request.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Callable, Iterator, Sequence

import httpx
import openai
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.llm import LLM

from qa._config import LLMSettings
from qa._errors import ConfigError, LLMError, QAError
from qa.llm._chat_model import ChatModel, first_token_distribution
from qa.llm._openai import openai_chat_model

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("local_server.py")
# Loading a GGUF from a cold disk, after the child's imports (about 2 s): Qwen2.5 1.5B loads in
# 0.5 s from the page cache, but a first read of its 1.1 GB can take tens of seconds.
STARTUP_TIMEOUT_S = 120.0
# A child whose connection broke is given this long to show it is gone (a crash closes the
# sockets a moment before the exit is seen), before it is taken for broken and replaced.
EXIT_GRACE_S = 2.0
STOP_WAIT_S = 5.0
_READY_POLL_S = 0.1
_LOG_TAIL_LINES = 6


# -- starting processes ---------------------------------------------------------------------


class _ProcessStarter:
    """Starts processes from one thread that lives as long as this process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not its process
    (prctl(2)): a child started from a request's worker thread, which the server may retire at
    any moment, would be killed with it."""

    def __init__(self) -> None:
        self._jobs: SimpleQueue = SimpleQueue()
        threading.Thread(target=self._run, name="qa-llm-process-starter", daemon=True).start()

    def popen(self, argv: Sequence[str], **options) -> subprocess.Popen:
        done: Future = Future()
        self._jobs.put((done, argv, options))
        return done.result()

    def _run(self) -> None:
        while True:
            done, argv, options = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(argv, **options))
            except BaseException as exc:  # noqa: BLE001  (handed to the caller, who raises it)
                done.set_exception(exc)


_starter: _ProcessStarter | None = None
_starter_lock = threading.Lock()


def _popen(argv: Sequence[str], **options) -> subprocess.Popen:
    global _starter
    with _starter_lock:
        if _starter is None:
            _starter = _ProcessStarter()
    return _starter.popen(argv, **options)


def _stop(process: subprocess.Popen) -> None:
    """Terminate, then kill if it does not go; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_WAIT_S)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


class _Children:
    """The child processes running now and their log folder, shared with the finalizer (which must
    not hold the model itself); once stopped, no child starts and no log is written any more."""

    def __init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="qa-local-llm-"))
        self._lock = threading.Lock()
        self._running: list[subprocess.Popen] = []
        self._stopped = False

    def start(self, argv: Sequence[str], log_path: Path, **options) -> subprocess.Popen:
        """Start one (log file opened and process listed under the lock, so a concurrent
        :meth:`stop_all` either comes first and refuses it, or comes after and stops it)."""
        with self._lock:
            if self._stopped:
                raise ConfigError("the local model was stopped")
            with log_path.open("wb") as output:
                process = _popen(argv, stdout=output, stderr=subprocess.STDOUT, **options)
            self._running.append(process)
            return process

    def stop(self, process: subprocess.Popen) -> None:
        _stop(process)
        with self._lock:
            if process in self._running:
                self._running.remove(process)

    def stop_all(self) -> None:
        with self._lock:
            self._stopped = True
            running, self._running = self._running, []
        for process in running:
            _stop(process)
        shutil.rmtree(self.log_dir, ignore_errors=True)


def exit_description(returncode: int) -> str:
    """"SIGSEGV", "exit code 1": how a child ended."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def _log_tail(path: Path) -> str:
    """The last lines of a child's log, on one line (errors are reported in one line)."""
    try:
        with path.open("rb") as file:
            file.seek(max(file.seek(0, os.SEEK_END) - 4000, 0))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-_LOG_TAIL_LINES:])


# -- the supervised model ---------------------------------------------------------------------


@dataclass
class _Child:
    """One running launcher and the client that talks to it."""

    process: subprocess.Popen
    base_url: str
    llm: LLM
    name_failure: Callable[[Exception], str | None]


class SupervisedChatModel(ChatModel):
    """A GGUF answered by a child process that this object starts, watches and restarts.

    ``llm`` is the client of the child running now; :attr:`child_pid` its process id."""

    def __init__(self, model_path: Path, settings: LLMSettings) -> None:
        super().__init__(llm=None, description=f"the local model {model_path.name}",  # type: ignore[arg-type]
                         context_window=settings.context_window, max_answer_tokens=settings.max_answer_tokens)
        _check_installed()
        self.model_path = model_path
        self.settings = settings
        self._lock = threading.Lock()  # one request, or one (re)start, at a time
        self._child: _Child | None = None
        self._closed = False
        # The child is stopped when this model is closed, collected, or the interpreter exits.
        self._children = _Children()
        self.log_path = self._children.log_dir / "local_server.log"
        self._finalizer = weakref.finalize(self, self._children.stop_all)
        try:
            with self._lock:
                self._ready_child()
        except BaseException:
            self.close()
            raise

    @property
    def child_pid(self) -> int | None:
        child = self._child
        return child.process.pid if child else None

    def close(self) -> None:
        """Stop the child and remove its log; the model answers no more."""
        self._closed = True
        self._finalizer()

    # -- answering

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """The answer's text as the child generates it; :class:`LLMError` when the child fails."""
        failure: LLMError | None = None
        with self._lock:
            child = self._answering_child()
            responses = None
            try:
                responses = child.llm.stream_chat(messages)
                for response in responses:
                    if response.delta:
                        yield response.delta
                return
            except Exception as exc:  # noqa: BLE001  (any failure of the child means: answer extractively)
                failure = self._failure(child, exc)
            finally:
                # A reader who stopped early closes the connection now, so the child stops
                # generating for nobody before the next request reaches it.
                if responses is not None:
                    responses.close()
        raise self._restarting_after(failure)

    def first_token_probabilities(self, messages: Sequence[ChatMessage], top: int = 10) -> dict[str, float]:
        """The likeliest first tokens of the child's reply; :class:`LLMError` when the child fails."""
        with self._lock:
            child = self._answering_child()
            try:
                return first_token_distribution(child.llm, messages, top)
            except Exception as exc:  # noqa: BLE001  (any failure of the child: go on without it)
                failure = self._failure(child, exc)
        raise self._restarting_after(failure)

    def _answering_child(self) -> _Child:
        """The running child, started if need be; a model that cannot start is an :class:`LLMError`
        to the request (the caller answers extractively), not a configuration error."""
        try:
            return self._ready_child()
        except ConfigError as exc:
            raise LLMError(exc.message) from None

    def _restarting_after(self, failure: LLMError) -> LLMError:
        """``failure``, once a restart of a child that cannot answer has begun (called after the
        lock is released, so the restart may run while this request goes on without the model)."""
        if self._child is None and not self._closed:
            threading.Thread(target=self._restart, name="qa-llm-restart", daemon=True).start()
        return failure

    def _failure(self, child: _Child, exc: Exception) -> LLMError:
        """What went wrong, as the reader's notice will say it; a child that cannot answer is replaced."""
        if self._closed:
            return LLMError(f"{self.description} was stopped")
        if isinstance(exc, openai.APIStatusError):
            # The child answered, with an error: it is alive and can take the next request.
            return LLMError(f"{self.description} {child.name_failure(exc)}")
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            reason = (f"produced no token for {self.settings.timeout_s:g} s; "
                      "it was stopped and is restarted for the next question")
            child.process.kill()
        else:
            try:
                child.process.wait(timeout=EXIT_GRACE_S)
                reason = (f"crashed ({exit_description(child.process.returncode)}); "
                          "it is restarted for the next question")
            except subprocess.TimeoutExpired:
                reason = f"failed ({type(exc).__name__}); it was stopped and is restarted for the next question"
                child.process.kill()
        tail = _log_tail(self.log_path)
        self._forget(child)
        log.warning("%s %s. Its log ended: %s", self.description, reason, tail)
        return LLMError(f"{self.description} {reason}")

    # -- the child's life

    def _ready_child(self) -> _Child:
        """The running child, started first if there is none or it died (call with the lock held).

        :class:`ConfigError` when it cannot be started."""
        if self._closed:
            raise ConfigError(f"{self.description} was stopped")
        child = self._child
        if child is not None:
            if child.process.poll() is None:
                return child
            log.warning("%s had ended (%s) since its last answer; starting it again. Its log ended: %s",
                        self.description, exit_description(child.process.returncode), _log_tail(self.log_path))
            self._forget(child)
        self._child = self._start_child()
        self.llm = self._child.llm
        return self._child

    def _restart(self) -> None:
        with self._lock:
            try:
                self._ready_child()
            except QAError as exc:
                # The next request tries again, and falls back with this reason if it fails too.
                log.warning("%s", exc.message)

    def _forget(self, child: _Child) -> None:
        self._children.stop(child.process)  # already ended or killed: this reaps it, no zombie
        if self._child is child:
            self._child = None

    def _start_child(self) -> _Child:
        listener = socket.create_server(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        argv = [sys.executable, str(LAUNCHER), "--model", str(self.model_path), "--model_alias", self.model_path.name,
                "--n_ctx", str(self.settings.context_window), "--listen_fd", str(listener.fileno()),
                "--parent_pid", str(os.getpid()), "--interrupt_requests", "False", "--disable_ping_events", "True"]
        if self.settings.threads:
            argv += ["--n_threads", str(self.settings.threads)]
        try:
            process = self._children.start(argv, self.log_path, pass_fds=(listener.fileno(),),
                                           stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError as exc:
            raise ConfigError(f"cannot start the server for {self.description}: {exc}") from None
        finally:
            # Only the child listens from now on: once it is gone, connecting fails at once
            # instead of waiting in a backlog nobody reads.
            listener.close()
        # Reaped the moment it exits, whoever notices first.
        threading.Thread(target=process.wait, name=f"qa-llm-reaper-{process.pid}", daemon=True).start()
        try:
            self._wait_until_ready(process, base_url)
            served = openai_chat_model(self.settings.model_copy(update={
                "backend": "openai", "base_url": base_url, "model": self.model_path.name,
                # Nothing to retry against a child of our own: it crashed, hung or refused for good.
                "max_retries": 0,
            }), environ={})
        except BaseException:
            self._children.stop(process)
            raise
        log.info("%s answers from process %d at %s", self.description, process.pid, base_url)
        return _Child(process, base_url, served.llm, served.name_failure)

    def _wait_until_ready(self, process: subprocess.Popen, base_url: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise ConfigError(
                        f"the server for {self.description} ended ({exit_description(process.returncode)}) "
                        f"while loading {self.model_path}: {_log_tail(self.log_path)}")
                try:
                    if client.get(f"{base_url}/models").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet: the model is still loading
                if time.monotonic() > deadline:
                    raise ConfigError(f"the server for {self.description} did not answer within "
                                      f"{STARTUP_TIMEOUT_S:g} s: {_log_tail(self.log_path)}")
                time.sleep(_READY_POLL_S)  # polling interval; each pass checks the real state


def _check_installed() -> None:
    """A missing llama-cpp-python is a ConfigError naming the install, not a child that dies at import."""
    missing = [name for name in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"llm.backend = llama_cpp/local needs llama-cpp-python with its server "
                          f"({', '.join(missing)} missing): run `make install-local-llm`, or "
                          "`pip install -e '.[llama-cpp]'` for a GGUF file of your own")
