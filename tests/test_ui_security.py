"""The chat's events called by a hostile client, not by the page: raw queue/join + queue/data
against a real ``qa serve``, with payloads the page would never send (issue 13).

A client can name any path in a file record. The server must read only files that Gradio's
upload route wrote into its upload folder, answer every other path the same way whether it
exists or not, never block on a named pipe, keep nothing in Gradio's temp folder after an
upload, and answer bad arguments with a clean message rather than a Python exception.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings, strategies as st

from _live import REPO, GradioPage, event_stream_lines, qa_server
from conftest import SEEDS, make_settings
from qa import QAService

UPLOAD_LIMIT = 50_000
EVENT_TIMEOUT_S = 60.0
# Our code's frames in a traceback in the server log: an event that failed inside ui.py or qa/.
OUR_FRAMES = (f'File "{REPO / "ui.py"}"', f'File "{REPO / "qa"}')
GRADIO_REFUSAL = "to the gradio cache dir because it was not uploaded by a user"
NOT_UPLOADED = "not a file uploaded through this page"
SECRET_TEXT = ("Prasklov Ledger\n\nThe Prasklov treasury moved 918 gold bars to the northern vault "
               "on Tuesday, the secret ledger says.\n")
SECRET_QUESTION = "How many gold bars did the Prasklov treasury move?"


def article(title: str, sentence: str) -> bytes:
    return f"{title}\n\n{sentence}\n".encode()


@dataclass
class Completed:
    success: bool
    output: dict
    seconds: float

    @property
    def error(self) -> str:
        return self.output.get("error") or ""

    @property
    def first_output(self) -> str:
        return self.output["data"][0]


class GradioEvents(GradioPage):
    """The chat's events, called the way the browser calls them, with any JSON as their data."""

    def __init__(self, base: str) -> None:
        super().__init__(base, timeout=30)

    def api_fn_index(self, api_name: str) -> int:
        return next(d["id"] for d in self.dependencies if d.get("api_name") == api_name)

    def call_raw(self, fn_index: int, data_json: str, timeout: float = EVENT_TIMEOUT_S) -> Completed | httpx.Response:
        """Send ``data_json`` (raw JSON text, so it can carry lone surrogate escapes) as the event's
        data; the completion message, or the join response when the queue refused the call."""
        session = uuid.uuid4().hex
        body = (f'{{"fn_index": {fn_index}, "session_hash": "{session}", "trigger_id": null, '
                f'"event_data": null, "data": {data_json}}}')
        started = time.monotonic()
        joined = self.http.post("/gradio_api/queue/join", content=body.encode("ascii"),
                                headers={"Content-Type": "application/json"})
        if joined.status_code != 200:
            return joined
        deadline = started + timeout
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session},
                              timeout=httpx.Timeout(timeout)) as stream:
            for line in event_stream_lines(stream):
                if time.monotonic() > deadline:
                    break
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return Completed(message["success"], message["output"], time.monotonic() - started)
        raise TimeoutError(f"event {fn_index} did not complete within {timeout} s")

    def call(self, fn_index: int, data: list, timeout: float = EVENT_TIMEOUT_S) -> Completed:
        completed = self.call_raw(fn_index, json.dumps(data), timeout)
        assert isinstance(completed, Completed), completed.text
        return completed

    def upload_route(self, files: list[tuple[str, bytes]]) -> httpx.Response:
        return self.http.post("/gradio_api/upload", files=[("files", (name, content)) for name, content in files])

    def uploaded(self, files: list[tuple[str, bytes]]) -> list[str]:
        response = self.upload_route(files)
        assert response.status_code == 200, response.text
        return response.json()


def file_records(paths: list[str]) -> list:
    return [[{"path": path, "meta": {"_type": "gradio.FileData"}} for path in paths]]


@dataclass
class Server:
    base: str
    events: GradioEvents
    upload_event: int
    ask_api: int
    gradio_temp: Path
    upload_dir: Path
    log: Path

    def documents(self) -> list[dict]:
        return self.events.http.get("/v1/documents").json()["documents"]

    def ask(self, question: str) -> dict:
        return self.events.http.post("/v1/ask", json={"question": question}).json()

    def healthy(self) -> bool:
        return self.events.http.get("/healthz", timeout=5).status_code == 200

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui-security")
    config = make_settings(root)
    QAService(config).ingest([SEEDS])
    # A temp folder of this server's own, so what lingers in it is this server's doing.
    gradio_temp = root / "gradio-temp"
    log = root / "server.log"
    env = {"GRADIO_TEMP_DIR": str(gradio_temp), "QA_SERVER_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
           "QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(Path(config.index.dir), Path(config.index.upload_dir), env=env, log=log) as base:
        events = GradioEvents(base)
        yield Server(base, events, events.fn_index("upload-files", "upload"), events.api_fn_index("ask"),
                     gradio_temp, Path(config.index.upload_dir), log)


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("outside") / "prasklov-ledger.txt"
    path.write_text(SECRET_TEXT, encoding="utf-8")
    return path


def lingering_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if not path.is_dir()]


# -- paths the client names ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["temp file", "README.md"])
def test_a_server_file_outside_the_upload_folder_is_refused_and_not_indexed(
        server: Server, secret_file: Path, which: str) -> None:
    target = secret_file if which == "temp file" else REPO / "README.md"

    completed = server.events.call(server.upload_event, file_records([str(target)]))

    assert not completed.success
    assert GRADIO_REFUSAL in completed.error
    documents = {d["doc"] for d in server.documents()}
    assert target.name not in documents
    answer = server.ask(SECRET_QUESTION if which == "temp file" else "What does make run create?")
    assert "918 gold bars" not in json.dumps(answer) and "creates .venv" not in json.dumps(answer)


def test_a_missing_path_gets_the_same_refusal_as_an_existing_one(server: Server, secret_file: Path) -> None:
    missing = secret_file.with_name("prasklov-ledgex.txt")
    assert not missing.exists()

    existing_answer = server.events.call(server.upload_event, file_records([str(secret_file)]))
    missing_answer = server.events.call(server.upload_event, file_records([str(missing)]))

    assert existing_answer.error.replace(str(secret_file), "PATH") == missing_answer.error.replace(str(missing), "PATH")
    assert "Errno" not in missing_answer.error and "No such file" not in missing_answer.error


def test_inside_the_upload_folder_only_what_the_upload_route_wrote_is_read(
        server: Server, secret_file: Path) -> None:
    # A file that got into Gradio's folder some other way, a missing one beside it, and a symlink
    # that leads out of the folder: all three answered alike, none read.
    planted_dir = server.gradio_temp / "planted"
    planted_dir.mkdir(parents=True)
    planted = planted_dir / "planted.txt"
    planted.write_text(SECRET_TEXT.replace("Prasklov", "Vendrik"), encoding="utf-8")
    link = planted_dir / "link.txt"
    link.symlink_to(secret_file)
    try:
        answers = [server.events.call(server.upload_event, file_records([str(path)]))
                   for path in (planted, planted_dir / "missing.txt")]
        through_link = server.events.call(server.upload_event, file_records([str(link)]))
        planted_text = planted.read_text(encoding="utf-8")
    finally:
        shutil.rmtree(planted_dir)

    refusals = [a.first_output.replace(name, "NAME") for a, name in zip(answers, ("planted.txt", "missing.txt"))]
    assert all(a.success for a in answers)
    assert refusals[0] == refusals[1] and NOT_UPLOADED in refusals[0] and "✓" not in refusals[0]
    assert not through_link.success and GRADIO_REFUSAL in through_link.error
    assert planted_text.startswith("Vendrik")  # refused, so not deleted either
    assert not {"planted.txt", "link.txt", "missing.txt"} & {d["doc"] for d in server.documents()}


def test_a_named_pipe_in_the_upload_folder_is_refused_without_blocking_the_server(server: Server) -> None:
    pipe_dir = server.gradio_temp / "pipes"
    pipe_dir.mkdir(parents=True)
    pipe = pipe_dir / "pipe.txt"
    os.mkfifo(pipe)
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(server.events.call, server.upload_event, file_records([str(pipe)]), 20.0)
            health = [server.healthy() for _ in range(5)]
            completed = pending.result(timeout=30)
        assert all(health)
        assert completed.success and completed.seconds < 10
        assert NOT_UPLOADED in completed.first_output and "✓" not in completed.first_output
        assert server.healthy()
    finally:
        # Should a reader be stuck on the pipe, a writer that opens and closes it releases it.
        try:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        shutil.rmtree(pipe_dir)


def test_gradio_serves_no_server_file_by_path(server: Server, secret_file: Path) -> None:
    for target in (REPO / "README.md", secret_file, Path(server.upload_dir).parent / "index"):
        response = server.events.http.get(f"/gradio_api/file={target}")
        assert response.status_code in (403, 404), (target, response.status_code)


# -- uploads through the upload route --------------------------------------------------------


def test_uploaded_files_are_indexed_in_one_go_and_removed_from_the_temp_folder(server: Server) -> None:
    files = [(f"crossing {n}.txt", article(f"Ferry Crossing {n}", f"The Quellmoor ferry {n} carried {n * 100 + 7} "
                                           "passengers across the strait on its first day."))
             for n in range(1, 4)]
    paths = server.events.uploaded(files)
    assert all(Path(p).is_file() and Path(p).is_relative_to(server.gradio_temp) for p in paths)

    completed = server.events.call(server.upload_event, file_records(paths))

    assert completed.success
    report = completed.first_output
    for n in range(1, 4):
        assert f"✓ crossing {n}.txt: “Ferry Crossing {n}”, 1 paragraph indexed" in report
    indexed = {d["doc"]: d for d in server.documents()}
    stamps = {indexed[f"crossing {n}.txt"]["ingested_at"] for n in range(1, 4)}
    assert len(stamps) == 1  # one ingest wrote all three
    assert lingering_files(server.gradio_temp) == []
    assert not any(Path(p).exists() or Path(p).parent.exists() for p in paths)
    assert "307 passengers" in json.dumps(server.ask("How many passengers did the Quellmoor ferry 3 carry?"))


def test_a_second_upload_of_a_name_with_other_content_is_saved_under_a_new_name(server: Server) -> None:
    vote = article("Bridge Vote", "The Ostrava bridge vote passed 9 to 2.")
    toll = article("Bridge Toll", "The Ostrava bridge toll rose to 4 crowns.")
    server.events.call(server.upload_event, file_records(server.events.uploaded([("bridge.txt", vote)])))
    second = server.events.uploaded([("bridge.txt", toll)])

    completed = server.events.call(server.upload_event, file_records(second))

    assert "✓ bridge.txt: saved as bridge (2).txt: bridge.txt already holds another article; “Bridge Toll”" \
        in completed.first_output
    assert {"bridge.txt", "bridge (2).txt"} <= {d["doc"] for d in server.documents()}


def test_an_upload_over_the_limit_is_refused_by_the_upload_route(server: Server) -> None:
    oversized = b"Too Long\n\n" + b"word " * (UPLOAD_LIMIT // 5 + 10)

    response = server.events.upload_route([("too-long.txt", oversized)])

    assert response.status_code == 413
    assert f"{UPLOAD_LIMIT}" in response.text
    assert not [p for p in lingering_files(server.gradio_temp) if p.stat().st_size >= UPLOAD_LIMIT]


# -- arguments the page would never send -----------------------------------------------------


def test_ask_api_refuses_a_k_that_is_not_a_whole_number_in_range(server: Server) -> None:
    for k in ("abc", 0, 51, 2.5, True):
        completed = server.events.call(server.ask_api, ["Who condemned the deployment of THAAD?", k])
        assert not completed.success and completed.output.get("title") == "Error"  # a gr.Error, not an exception
        assert completed.error == "The number of sources (k) must be a whole number from 1 to 50.", k
    with pytest.raises(AppError, match=r"whole number from 1 to 50"):
        Client(server.base, verbose=False).predict("Who condemned THAAD?", "abc", api_name="/ask")
    assert server.events.call(server.ask_api, ["Who condemned the deployment of THAAD?", "3"]).success


@pytest.mark.parametrize("question", ["\u200b\u200b\u200b", "\x00\x00", "\u200b \ufeff"])
def test_a_question_of_invisible_characters_is_refused_with_a_clear_message(server: Server, question: str) -> None:
    respond = server.events.fn_index("question-box", "submit")

    from_api = server.events.call(server.ask_api, [question, None])
    in_chat = server.events.call(respond, [question, None, 5, "extractive"])

    assert not from_api.success
    assert from_api.error == "The question has no words in it; ask something about the articles"
    assert in_chat.success and 'role="alert"' in in_chat.first_output
    assert "The question has no words in it" in in_chat.first_output


@pytest.mark.parametrize("event", ["respond", "ask", "delete"])
def test_an_event_carrying_a_lone_surrogate_is_refused_before_gradio_reads_it(server: Server, event: str) -> None:
    # Gradio would quote the bad value in an error message it then cannot send as UTF-8.
    fn_index = {"respond": server.events.fn_index("question-box", "submit"), "ask": server.ask_api,
                "delete": server.events.fn_index("library-table", "select")}[event]

    refused = server.events.call_raw(fn_index, '["Who condemned \\ud800 THAAD?", null, 5, "extractive"]')

    assert isinstance(refused, httpx.Response) and refused.status_code == 400
    assert "unpaired surrogate" in refused.json()["error"]["message"]
    assert server.events.call(server.ask_api, ["Who condemned the deployment of THAAD?", 3]).success


def test_an_event_whose_body_is_not_utf8_is_refused_saying_so(server: Server) -> None:
    body = (f'{{"fn_index": {server.ask_api}, "session_hash": "{uuid.uuid4().hex}", "trigger_id": null, '
            '"event_data": null, "data": ["Who condemned caf\u00e9 THAAD?", 3]}').encode("latin-1")
    refused = server.events.http.post("/gradio_api/queue/join", content=body,
                                      headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_json"
    assert "not UTF-8" in refused.json()["error"]["message"]
    assert server.events.call(server.ask_api, ["Who condemned the deployment of THAAD?", 3]).success


@pytest.mark.parametrize("path", ["https://example.org/article.txt", " http://203.0.113.9/a.txt", "HTTPS://x.org/a"])
def test_a_file_record_naming_a_url_is_refused_before_gradio_downloads_it(server: Server, path: str) -> None:
    before = sorted(server.gradio_temp.rglob("*"))
    refused = server.events.call_raw(server.upload_event, json.dumps(file_records([path])))
    assert isinstance(refused, httpx.Response) and refused.status_code == 400
    assert "may not name a file by URL" in refused.json()["error"]["message"]
    assert sorted(server.gradio_temp.rglob("*")) == before


# -- anything at all, at every event ---------------------------------------------------------

ODD_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["", " ", "\x00", "\u200b", "\ufeff", "..", "../../etc/passwd", "/etc/passwd", "C:\\x.txt", "${x}", "{{x}}",
     "<script>alert(1)</script>", "ع" * 50, "\U0001f600" * 5, "extractive", "llm"])
LONE_SURROGATE = st.sampled_from(["\ud800", "\udfff", "\udc00x", "a\ud83d"])
ODD_NUMBER = st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
RANDOM_PATHS = st.sampled_from(["/etc/passwd", str(REPO / "README.md"), "/proc/self/environ", "/dev/zero",
                                "/tmp", "", "x.txt", "../x.txt", "http://127.0.0.1:1/x.txt"]) \
    | st.text(alphabet=string.printable, max_size=30).map(lambda tail: "/tmp/" + tail)
FILE_RECORD = st.fixed_dictionaries(
    {"path": RANDOM_PATHS, "meta": st.just({"_type": "gradio.FileData"})},
    optional={"orig_name": ODD_TEXT, "size": ODD_NUMBER, "url": RANDOM_PATHS, "is_stream": st.booleans()})
SCALAR = st.none() | st.booleans() | ODD_NUMBER | ODD_TEXT | LONE_SURROGATE
VALUE = st.recursive(SCALAR | FILE_RECORD, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(ODD_TEXT, inner, max_size=3), max_leaves=8)


def json_text(value: object) -> str:
    # ensure_ascii writes a lone surrogate as the escape \ud800, which is what a hostile client sends.
    return json.dumps(value, ensure_ascii=True)


def fn_indexes(events: GradioEvents) -> list[tuple[int, tuple[str, ...]]]:
    """(fn_index, its inputs' component types) of every event the page exposes, the /ask api included."""
    return [(d["id"], tuple(events.components[i]["type"] for i in d["inputs"])) for d in events.dependencies]


def argument(component: str, position: int, gradio_temp: Path) -> st.SearchStrategy:
    """Anything at all, or a value close enough to what the page sends to get past Gradio's own
    checks and reach the handler."""
    inside = st.text(alphabet=string.ascii_letters + "._-/ ", max_size=20).map(lambda tail: str(gradio_temp / tail))
    plausible = {
        "textbox": ODD_TEXT | LONE_SURROGATE | ODD_TEXT.map(lambda t: "Who condemned THAAD? " + t),
        # /ask's (question, k)
        "api": (ODD_TEXT | LONE_SURROGATE) if position == 0 else st.none() | st.integers(0, 60) | ODD_TEXT,
        "slider": st.integers(1, 20) | st.floats(1, 20),
        "radio": st.just("extractive"),
        "file": st.lists(FILE_RECORD | st.fixed_dictionaries(
            {"path": inside, "meta": st.just({"_type": "gradio.FileData"})}), max_size=4),
        "state": st.none(),
    }.get(component, SCALAR)
    return plausible | VALUE


HYPOTHESIS_EXAMPLES = int(os.environ.get("QA_UI_FUZZ_EXAMPLES", "100"))


def test_no_payload_at_any_event_makes_the_server_fail(server: Server) -> None:
    targets = fn_indexes(server.events)
    assert server.upload_event in {i for i, _ in targets} and server.ask_api in {i for i, _ in targets}
    cases: list[int] = []
    outcomes: Counter[str] = Counter()

    @settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(target=st.sampled_from(targets), data=st.data())
    def case(target: tuple[int, tuple[str, ...]], data: st.DataObject) -> None:
        fn_index, inputs = target
        arguments = st.tuples(*(argument(component, position, server.gradio_temp)
                                for position, component in enumerate(inputs))).map(list)
        values = data.draw(arguments | st.lists(VALUE, max_size=5), "data")
        log_before = len(server.log_text())
        completed = server.events.call_raw(fn_index, json_text(values), timeout=EVENT_TIMEOUT_S)
        cases.append(fn_index)
        if isinstance(completed, httpx.Response):  # the queue refused the call itself
            assert completed.status_code < 500, completed.text
            outcomes[f"{fn_index}: join {completed.status_code}"] += 1
        else:
            assert "Traceback" not in json.dumps(completed.output)
            outcomes[f"{fn_index}: " + ("ok" if completed.success else completed.error[:50])] += 1
        assert server.healthy()
        new_log = server.log_text()[log_before:]
        assert not any(frame in new_log for frame in OUR_FRAMES), new_log[-3000:]

    case()
    print(f"\n{len(cases)} hostile event calls over {len(set(cases))} events")
    for outcome, count in sorted(outcomes.items()):
        print(f"{count:5} × {outcome}")
    assert len(cases) >= min(HYPOTHESIS_EXAMPLES, 20)
    assert {d["doc"] for d in server.documents()}.isdisjoint({"passwd", "README.md", "environ"})
