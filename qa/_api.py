"""The HTTP API: thin FastAPI routes over :class:`~qa._service.QAService`.

Routes are plain ``def`` functions on purpose: FastAPI runs them in its thread
pool, and the service's calls block (embedding, Chroma), so concurrent requests
run side by side instead of queueing behind one another. The service itself keeps
answers apart (no per-request state is shared) and makes an article visible whole
or not at all, so an upload beside queries needs nothing here.

Every error leaves as ``{"error": {"type", "message"}}``: :class:`~qa._errors.QAError`
carries its own status and type; FastAPI's validation and HTTP errors are mapped
onto the same shape; anything unexpected becomes a 500 without a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import itertools
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Callable, Iterable, Iterator, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import format_sse_event
from starlette.exceptions import HTTPException
from starlette.routing import Match

from qa._api_schemas import (
    AskRequest, AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk,
    ChatCompletionRequest, ChunkChoice, ChunkDelta, DeleteResponse, DocumentDetail, DocumentList,
    DocumentSummary, ErrorBody, Health, IngestReportOut, ModelCard, ModelList, Readiness,
    UploadedFileOut, UploadResponse,
)
from qa._config import Settings
from qa._errors import InvalidInput, NotReady, QAError, Unauthorized, UploadRejected
from qa._models import AskResponse, ChatTurn
from qa._service import AnswerDelta, AnswerDone, QAService
from qa._uploads import OnConflict, safe_upload_name

API_VERSION = "0.1.0"
MODEL_PREFIX = "news-qa"
_HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_MAX_REPORTED_PROBLEMS = 5
# A question, its history and a few options fit in far less; the cap keeps a huge body out of memory.
JSON_BODY_LIMIT = 1_000_000
MAX_UPLOAD_FILES = 20
_MULTIPART_OVERHEAD = 64_000

log = logging.getLogger("qa.api")
T = TypeVar("T")


def model_ids(service: QAService) -> dict[str, str]:
    """Model id (as ``/v1/models`` lists it) → answer mode; the bare name is the default mode."""
    modes = service.answer_modes
    return {MODEL_PREFIX: modes[0], **{f"{MODEL_PREFIX}-{mode}": mode for mode in modes}}


# -- errors --------------------------------------------------------------------------


BODY_NOT_UTF8 = "the request body is not UTF-8; send JSON encoded as UTF-8"


def error_response(status: int, error_type: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    # A message may quote what the client sent (a field name, say) and JSON may have carried an
    # unpaired surrogate in it, which no UTF-8 response can hold: it is shown escaped instead.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = ErrorBody.model_validate({"error": {"type": error_type, "message": message}})
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(errors: Iterable[dict]) -> str:
    problems = []
    for error in itertools.islice(errors, _MAX_REPORTED_PROBLEMS):
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(QAError)
    async def qa_error(_: Request, exc: QAError) -> JSONResponse:
        return error_response(exc.http_status, exc.error_type, exc.message,
                              getattr(exc, "http_headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(error.get("type") == "json_invalid" for error in errors):
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        whole_body_wrong = any(tuple(error.get("loc", ())) == ("body",) for error in errors)
        if whole_body_wrong and "json" not in request.headers.get("content-type", ""):
            # FastAPI reads a body as JSON only when it says so; otherwise the body looks like no object at all.
            return error_response(422, "invalid_request",
                                  "send the body as JSON with the header `Content-Type: application/json`")
        return error_response(422, "invalid_request", _validation_message(errors))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's own words for it are "There was an error parsing the body".
            return error_response(400, "invalid_json", BODY_NOT_UTF8)
        fallback = "invalid_request" if exc.status_code < 500 else "server_error"
        error_type = _HTTP_ERROR_TYPES.get(exc.status_code, fallback)
        return error_response(exc.status_code, error_type, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback on the server; the client only learns that it failed.
        log.error("unexpected %s while serving %s %s", type(exc).__name__, request.method, request.url.path)
        return error_response(500, "internal_error", "the server failed to answer this request; see its log")


class DeclaredBodyLimit:
    """Refuses a request whose declared ``Content-Length`` is over its route's limit, before
    reading it, in the API's error shape (FastAPI's own limit, which still guards bodies sent
    without a length, answers these in plain text)."""

    def __init__(self, app, limit_for: Callable[[str, str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            limit = self.limit_for(scope["method"], scope["path"])
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if limit is not None and declared.isdigit() and int(declared) > limit:
                response = error_response(413, "payload_too_large",
                                          f"the request body is {int(declared):,} bytes; the limit here is {limit:,}")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- which sites may talk to the server ------------------------------------------------

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Binding to these means "every interface": they name no host a client could send.
_WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::"})
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_:")


def _host_name(name: str) -> str:
    """``name`` as the guard compares it: lower case, no brackets or final dot, an IP address in
    its shortest form (so ``[0:0::1]`` is ``::1``)."""
    name = name.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def _split_authority(authority: str) -> tuple[str, str] | None:
    """(host name, port) of a ``Host`` header or an origin's ``host[:port]``; None when it is neither."""
    if authority.startswith("["):
        name, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = authority.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    name = _host_name(name)
    if not name or not set(name) <= _HOST_CHARACTERS:
        return None
    return name, port


class HostAndOriginGuard:
    """Refuses, for the whole app (the chat mounted at "/" included), what a web page on another
    site can make a visitor's browser send to this server.

    DNS rebinding: a page on evil.example whose name is made to resolve to 127.0.0.1 reaches a
    local server as a same-origin page, but its requests still say ``Host: evil.example``; only a
    ``Host`` naming this server is answered (421 otherwise). Cross-site requests: a page on any
    site may post a form or a ``fetch`` here, and the browser says where it came from in
    ``Origin``; a state-changing request from another origin is refused (403). Requests without
    ``Origin`` (curl, scripts, the official clients) are not from a web page and pass.
    """

    def __init__(self, app, allowed_hosts: Iterable[str], bound_host: str,
                 origin_checked: Callable[[str], bool]) -> None:
        self.app = app
        configured = {_host_name(name) for name in allowed_hosts if name.strip() != "*"}
        self.any_host = any(name.strip() == "*" for name in allowed_hosts)
        self.hosts = _LOOPBACK_NAMES | configured | ({_host_name(bound_host)} - _WILDCARD_ADDRESSES)
        # Pages served from a configured name (a proxy's public name, say) may post here too.
        self.origin_hosts = frozenset(configured)
        self.origin_checked = origin_checked

    async def __call__(self, scope, receive, send) -> None:
        refusal = self._refusal(scope) if scope["type"] in ("http", "websocket") else None
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before the handshake: the server answers 403
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope) -> JSONResponse | None:
        hosts = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"]
        origins = [value.decode("latin-1") for name, value in scope["headers"] if name == b"origin"]
        if len(hosts) > 1:
            return error_response(400, "invalid_host", "the request has more than one Host header")
        host = hosts[0].strip() if hosts else None
        if host is not None:
            authority = _split_authority(host)
            if authority is None:
                return error_response(400, "invalid_host", f"the Host header {host[:100]!r} is not a host name")
            if not self._serves(authority[0], scope):
                return error_response(
                    421, "invalid_host",
                    f"this server does not answer to the host name {authority[0][:100]!r}; "
                    "add it to [server] allowed_hosts (QA_SERVER_ALLOWED_HOSTS) to allow it")
        state_changing = scope["type"] == "websocket" or scope.get("method") in _STATE_CHANGING
        if origins and state_changing and self.origin_checked(scope["path"]) \
                and not self._same_site(origins[-1].strip(), host):
            return error_response(403, "forbidden_origin",
                                  f"requests from pages on {origins[-1][:100]!r} may not change anything here; "
                                  "send it without an Origin header (from a script, not a web page), or "
                                  "from this server's own page")
        return None

    def _serves(self, name: str, scope) -> bool:
        if self.any_host or name in self.hosts:
            return True
        # The address the connection arrived at, named as an IP literal: a page loaded from that
        # address is this server's own (a bound 0.0.0.0 is reached at a real interface's address).
        local = scope.get("server")
        return bool(local) and isinstance(local[0], str) and _host_name(local[0]) == name

    def _same_site(self, origin: str, host: str | None) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a sandboxed or file: page) or nonsense
        if host is not None and parts.netloc.lower() == host.lower():
            return True
        authority = _split_authority(parts.netloc)
        return authority is not None and authority[0] in self.origin_hosts


def _error_responses(*statuses: int) -> dict[int | str, dict]:
    return {status: {"model": ErrorBody, "description": "an error, in the API's one error shape"}
            for status in statuses}


def _json_error_responses(*statuses: int) -> dict[int | str, dict]:
    """Error responses of a route whose success is not JSON: FastAPI would give a ``model``
    the route's own media type, but errors are always JSON."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}  # registered by the routes using _error_responses
    return {status: {"description": "an error, in the API's one error shape",
                     "content": {"application/json": {"schema": schema}}} for status in statuses}


# -- auth ----------------------------------------------------------------------------


def _api_key_check(api_key: str):
    """A dependency that admits a request only with ``Authorization: Bearer <api_key>``."""
    # Hashing first makes the comparison constant-time in the key's length as well.
    expected = hashlib.sha256(api_key.encode()).digest()
    bearer = HTTPBearer(auto_error=False, scheme_name="api_key",
                        description="the server's QA_API_KEY, as `Authorization: Bearer <key>`")

    # A default rather than Annotated[...]: the annotation is a string here and cannot name `bearer`.
    def require_api_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        supplied = credentials.credentials if credentials else ""
        if not hmac.compare_digest(hashlib.sha256(supplied.encode()).digest(), expected):
            raise Unauthorized("this endpoint needs the header `Authorization: Bearer <key>` with the server's API key")

    return require_api_key


# -- readiness -----------------------------------------------------------------------


class WarmUp:
    """Loads the embedding model and the index in the background, and remembers how that went."""

    def __init__(self, service: QAService) -> None:
        self._service = service
        self._finished = threading.Event()
        self._failure: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="qa-warm-up", daemon=True).start()

    def _run(self) -> None:
        try:
            self._service.warm_up()
        except QAError as exc:
            self._failure = exc.message
        except Exception as exc:  # a library's own error; readiness reports it rather than dying
            self._failure = f"{type(exc).__name__} while loading"
            log.exception("warm-up failed")
        finally:
            self._finished.set()

    def check(self) -> Readiness:
        if not self._finished.is_set():
            raise NotReady("still loading the embedding model and the index")
        if self._failure is not None:
            # A store that was down at start may be back: try again rather than stay unready.
            try:
                self._service.warm_up()
            except QAError as exc:
                raise NotReady(f"not ready: {exc.message}") from None
            self._failure = None
        try:
            records = self._service.snapshot().records
        except QAError as exc:
            raise NotReady(f"the index cannot be read: {exc.message}") from None
        return Readiness(documents=len(records))


# -- streaming -----------------------------------------------------------------------


class EventStream(StreamingResponse):
    """Server-Sent Events made by the route itself. Not FastAPI's ``EventSourceResponse``:
    that one wants the route to be a generator, which would start the 200 before the
    question is checked."""

    media_type = "text/event-stream"

    def __init__(self, events: Iterator[bytes]) -> None:
        # Proxies must pass each event on at once rather than buffer or cache the stream.
        super().__init__(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _started(events: Iterator[T]) -> Iterator[T]:
    """``events`` with its first step already taken, so a bad question becomes an HTTP error
    status instead of a stream that breaks after a 200."""
    first = next(events)
    return itertools.chain([first], events)


def _json(model) -> str:
    return model.model_dump_json(exclude_none=True)


def _error_data(error_type: str, message: str) -> str:
    return json.dumps({"error": {"type": error_type, "message": message}})


def _until_failure(chunks: Iterator[bytes], error_event: Callable[[str], bytes]) -> Iterator[bytes]:
    """``chunks``; should making them fail after the 200 went out, one last event carries the error."""
    try:
        yield from chunks
    except QAError as exc:
        yield error_event(_error_data(exc.error_type, exc.message))
    except Exception:
        log.exception("a stream failed after it started")
        yield error_event(_error_data("internal_error", "the server failed while streaming this answer; see its log"))


def _ask_events(events: Iterator[AnswerDelta | AnswerDone]) -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        for event in events:
            if isinstance(event, AnswerDelta):
                yield format_sse_event(event="delta", data_str=json.dumps({"text": event.text}))
                continue
            response = event.response
            sources = {"citations": [c.model_dump() for c in response.citations],
                       "abstained": response.abstained,
                       "related": [r.model_dump() for r in response.related]}
            yield format_sse_event(event="citations", data_str=json.dumps(sources))
            yield format_sse_event(event="done", data_str=response.model_dump_json())

    return _until_failure(chunks(), lambda data: format_sse_event(event="error", data_str=data))


def _completion_events(events: Iterator[AnswerDelta | AnswerDone], completion_id: str,
                       model: str) -> Iterator[bytes]:
    created = int(time.time())

    def chunk(delta: ChunkDelta, **extra) -> bytes:
        piece = ChatCompletionChunk(id=completion_id, created=created, model=model,
                                    choices=[ChunkChoice(delta=delta, finish_reason=extra.pop("finish_reason", None))],
                                    **extra)
        return format_sse_event(data_str=_json(piece))

    def chunks() -> Iterator[bytes]:
        yield chunk(ChunkDelta(role="assistant", content=""))
        for event in events:
            if isinstance(event, AnswerDelta):
                yield chunk(ChunkDelta(content=event.text))
            else:
                response = event.response
                yield chunk(ChunkDelta(), finish_reason="stop", citations=response.citations,
                            abstained=response.abstained, related=response.related,
                            unsupported=response.unsupported, notice=response.notice, answer=response.answer)
        yield format_sse_event(data_str="[DONE]")

    # OpenAI's clients raise an APIError for a data line with an "error" key.
    return _until_failure(chunks(), lambda data: format_sse_event(data_str=data))


# How /openapi.json describes each event of the two streams (schemathesis checks them too).
_ASK_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["delta", "citations", "done", "error"]},
        "data": {"type": "string", "description": "a JSON object: {text} for delta, "
                 "{citations, abstained, related} for citations, the answer object for done, "
                 "{error: {type, message}} for error"},
    },
}
_CHUNK_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string", "description": "a chat.completion.chunk as JSON, or [DONE], "
                                                            "or {error: {type, message}} if it fails midway"}},
}
_ASK_STREAM_DOC = {
    "description": "Server-Sent Events: `delta` events `{\"text\"}` with the answer as it is produced, "
                   "one `citations` event `{\"citations\", \"abstained\", \"related\"}`, then `done` "
                   "with the whole answer object (the same as POST /v1/ask returns). Should the answer "
                   "fail after the stream started, a last `error` event `{\"error\": {\"type\", \"message\"}}` "
                   "ends it.",
    "content": {"text/event-stream": {"schema": _ASK_EVENT_SCHEMA}},
}
_COMPLETION_STREAM_DOC = {
    "description": "With `stream: false`, the chat.completion; with `stream: true`, Server-Sent Events of "
                   "chat.completion.chunk objects, the last of which carries `citations`, then `data: [DONE]`.",
    "content": {"text/event-stream": {"schema": _CHUNK_EVENT_SCHEMA}},
}


# -- the app -------------------------------------------------------------------------


def build_api(service: QAService, settings: Settings, api_key: str | None = None) -> FastAPI:
    """The FastAPI app with ``/v1`` and the health checks; ``api_key`` guards every ``/v1`` route.

    ``settings.server.host`` is taken as the address the server is bound to, which the Host check
    always admits."""
    warm_up = WarmUp(service)
    # Now rather than when the server starts: its first vector search waits on Chroma loading the
    # vector index, while this thread goes on building the app (the chat page reads the manifest).
    warm_up.start()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        service.close()  # a local model's child process stops with the server

    app = FastAPI(
        title="News QA",
        version=API_VERSION,
        description="Answers questions from news articles and cites the paragraph behind every claim. "
                    "Errors always have the shape {\"error\": {\"type\", \"message\"}}.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    guards = [Depends(_api_key_check(api_key))] if api_key else []
    common_errors = (400, 413, 421, 422, 500, 503, *((401,) if api_key else (403,)))
    v1 = APIRouter(prefix="/v1", dependencies=guards, responses=_error_responses(*common_errors),
                   max_body_size=JSON_BODY_LIMIT)
    upload_body_limit = settings.server.max_upload_bytes * MAX_UPLOAD_FILES + _MULTIPART_OVERHEAD

    def body_limit(method: str, path: str) -> int | None:
        if not path.startswith("/v1/"):
            return None  # the chat UI sets its own limits
        return upload_body_limit if (method, path) == ("POST", "/v1/documents") else JSON_BODY_LIMIT

    app.add_middleware(DeclaredBodyLimit, limit_for=body_limit)

    def origin_checked(path: str) -> bool:
        # A browser cannot attach the bearer key to a cross-site request, so with a key /v1 needs
        # no Origin check; the chat's login is a cookie, which a browser does attach.
        return not (api_key and (path == "/v1" or path.startswith("/v1/")))

    # Added last, so it runs first: a refused request reaches neither the API nor the chat.
    app.add_middleware(HostAndOriginGuard, allowed_hosts=settings.server.allowed_hosts,
                       bound_host=settings.server.host, origin_checked=origin_checked)
    models = model_ids(service)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is up (says nothing about the index)."""
        return Health()

    @app.get("/readyz", response_model=Readiness, tags=["health"], responses=_error_responses(503))
    def readyz() -> Readiness:
        """The embedding model and the index are loaded; 503 until then or while the store fails."""
        return warm_up.check()

    # Load balancers and monitors probe with HEAD; the server sends the GET answer's status and
    # headers without its body. Kept out of the spec, which lists each check once.
    app.head("/healthz", response_model=Health, include_in_schema=False)(healthz)
    app.head("/readyz", response_model=Readiness, include_in_schema=False)(readyz)

    # -- asking ----------------------------------------------------------------------

    @v1.post("/ask", response_model=AskResponse, tags=["ask"],
             responses={200: {"description": "the answer object; with `stream: true`, the events of "
                                             "/v1/ask/stream", "content": _ASK_STREAM_DOC["content"]},
                        **_error_responses(409)})
    def ask(request: AskRequest):
        """Answer a question from the indexed articles, citing paragraphs, or abstain.

        The body of the answer is the same object as `qa ask --json`. With `"stream": true`
        the answer comes as Server-Sent Events, exactly as from /v1/ask/stream.
        """
        if request.stream:
            return _ask_stream_response(request)
        return service.ask(request.question, request.history, k=request.k, mode=request.mode)

    @v1.post("/ask/stream", response_class=EventStream, status_code=200, tags=["ask"],
             responses={200: _ASK_STREAM_DOC, **_json_error_responses(409, *common_errors)})
    def ask_stream(request: AskRequest) -> EventStream:
        """The answer as Server-Sent Events: text deltas, the citations, then done."""
        return _ask_stream_response(request)

    def _ask_stream_response(request: AskRequest) -> EventStream:
        events = _started(service.ask_stream(request.question, request.history, k=request.k, mode=request.mode))
        return EventStream(_ask_events(events))

    # -- OpenAI-compatible ---------------------------------------------------------

    @v1.get("/models", response_model=ModelList, tags=["openai"])
    def list_models() -> ModelList:
        """The bot's model names, for OpenAI-compatible clients."""
        created = int(time.time())
        return ModelList(data=[ModelCard(id=name, created=created) for name in models])

    @v1.post("/chat/completions", response_model=ChatCompletion, tags=["openai"],
             responses={200: _COMPLETION_STREAM_DOC, **_error_responses(409)})
    def chat_completions(request: ChatCompletionRequest):
        """OpenAI-compatible chat: the last message is the question, earlier user and assistant
        messages are the history. The answer keeps its [n] markers; `citations` holds the sources."""
        if request.model not in models:
            raise InvalidInput(f"unknown model {request.model!r}; GET /v1/models lists: {', '.join(models)}")
        *earlier, last = request.messages
        if last.role != "user":
            raise InvalidInput(f"the last message must be the user's question, not a {last.role!r} message")
        history = [ChatTurn(role=m.role, content=m.text()) for m in earlier if m.role in ("user", "assistant")]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        mode = models[request.model]
        if request.stream:
            events = _started(service.ask_stream(last.text(), history, k=request.k, mode=mode))
            return EventStream(_completion_events(events, completion_id, request.model))
        response = service.ask(last.text(), history, k=request.k, mode=mode)
        return ChatCompletion(
            id=completion_id, created=int(time.time()), model=request.model,
            choices=[ChatChoice(message=AssistantMessage(content=response.answer))],
            citations=response.citations, abstained=response.abstained, related=response.related,
            unsupported=response.unsupported, notice=response.notice,
        )

    # -- documents -------------------------------------------------------------------

    @v1.get("/documents", response_model=DocumentList, tags=["documents"])
    def list_documents() -> DocumentList:
        """Every indexed article, without its paragraphs."""
        summaries = [DocumentSummary.of(record) for record in service.documents()]
        return DocumentList(count=len(summaries), documents=summaries)

    @v1.post("/documents", response_model=UploadResponse, status_code=201, tags=["documents"],
             responses=_error_responses(409, 415), max_body_size=upload_body_limit)
    def upload_documents(
        files: Annotated[list[UploadFile], File(description="one or more .txt, .md or .html articles")],
        on_conflict: Annotated[OnConflict, Query(
            description="when a file's name already holds an article with other content: `refuse` "
                        "(409 upload_conflict, nothing changes), `rename` (keep both; `files[].saved_as` "
                        "gives the new name) or `replace` the old article")] = "refuse",
    ) -> UploadResponse:
        """Upload articles; each is saved in the upload folder and indexed incrementally.

        At most 20 files per request, indexed together. Names and sizes of all files are checked
        before any is written, so a rejected request changes nothing. `files` says, per file, the
        name it was saved under and whether it was added, updated, unchanged or skipped (a file
        with no readable text is not kept); when every file is skipped the answer is 422.
        """
        if len(files) > MAX_UPLOAD_FILES:
            raise UploadRejected(f"{len(files)} files in one request; send at most {MAX_UPLOAD_FILES}")
        limit = settings.server.max_upload_bytes
        for upload in files:
            # Refused before reading, so twenty oversized files are never held in memory.
            if upload.size is not None and upload.size > limit:
                raise UploadRejected(f"{safe_upload_name(upload.filename or '')} is {upload.size:,} bytes; "
                                     f"the limit is {limit:,}", http_status=413)
        outcomes, report = service.upload([(upload.filename or "", upload.file.read(limit + 1)) for upload in files],
                                          on_conflict=on_conflict)
        records = service.snapshot().records
        indexed = dict.fromkeys(o.article_id for o in outcomes if o.article_id in records)
        if not indexed:
            reasons = "; ".join(f"{o.name}: {o.note}" for o in outcomes if o.note) or "no article found"
            raise UploadRejected(f"nothing was indexed: {reasons}", http_status=422)
        return UploadResponse(files=[UploadedFileOut.of(o) for o in outcomes],
                              documents=[DocumentSummary.of(records[article_id]) for article_id in indexed],
                              report=IngestReportOut.merged([report]))

    @v1.get("/documents/{document_id}", response_model=DocumentDetail, tags=["documents"],
            responses=_error_responses(404))
    def get_document(document_id: str) -> DocumentDetail:
        """One article with its numbered paragraphs and their character spans."""
        return DocumentDetail.of(service.document(document_id))

    @v1.delete("/documents/{document_id}", response_model=DeleteResponse, tags=["documents"],
               responses=_error_responses(404))
    def delete_document(document_id: str) -> DeleteResponse:
        """Remove an article from the index (and an uploaded article's file)."""
        return DeleteResponse(deleted=DocumentSummary.of(service.delete_document(document_id)))

    @v1.api_route("/{unknown_path:path}", methods=_ALL_METHODS, include_in_schema=False)
    def unknown_endpoint(request: Request, unknown_path: str) -> None:
        # Without this, the chat UI mounted at "/" would answer unknown /v1 paths with its own page.
        allowed = sorted({method for route in v1.routes
                          if route.matches(request.scope)[0] == Match.PARTIAL
                          for method in getattr(route, "methods", None) or ()})
        if allowed:
            raise HTTPException(405, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                                headers={"Allow": ", ".join(allowed)})
        raise HTTPException(404, f"no endpoint at {request.url.path}; GET /openapi.json lists them")

    app.include_router(v1)
    return app
