"""One ASGI app: the HTTP API under /v1 (and health checks), the Gradio chat at /.

With ``QA_API_KEY`` set, the API wants ``Authorization: Bearer <key>`` and the chat
sits behind Gradio's login: user ``QA_UI_USER`` (default ``qa``), password
``QA_UI_PASSWORD`` (default: the API key itself). Setting ``QA_UI_PASSWORD``
alone puts the chat behind the login and leaves the API open.
"""

from __future__ import annotations

import json
from typing import Mapping

import gradio as gr
from fastapi import FastAPI
from starlette.middleware import Middleware

import ui
from qa._api import BODY_NOT_UTF8, build_api, error_response
from qa._config import Settings, load_settings, secret
from qa._service import QAService
from qa._text import has_lone_surrogate

DEFAULT_UI_USER = "qa"
# An event's JSON carries a question, a few settings and file records, never an article's text.
CHAT_EVENT_BODY_LIMIT = 1_000_000


def _has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return has_lone_surrogate(value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _names_a_remote_file(value: object) -> bool:
    """Whether a file record in ``value`` gives a URL as its path, which Gradio would download."""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str) and path.strip().lower().startswith(("http://", "https://")):
            return True
        return any(_names_a_remote_file(item) for item in value.values())
    if isinstance(value, list):
        return any(_names_a_remote_file(item) for item in value)
    return False


class ChatEventGuard:
    """Refuses, before Gradio reads it, a chat event whose JSON holds an unpaired surrogate
    (``"\\ud800"``) or a file record whose path is a URL, or is over :data:`CHAT_EVENT_BODY_LIMIT`,
    or whose body is not UTF-8 (as the API does).

    Gradio 6.31 quotes an event's bad arguments in its error message and then cannot send that
    message as UTF-8: the client's event stream breaks off with a server-side exception. No
    question, setting or file name needs such a character, and the API refuses them too.
    A file record whose ``path`` is an ``http(s)`` URL makes Gradio download it into its temp
    folder before any handler runs (and keep it): any client could make the server fetch and
    store whatever it names. The page's own uploads name the file Gradio's upload route saved."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        headers = dict(scope.get("headers") or ())
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/gradio_api/")
                and headers.get(b"content-type", b"").startswith(b"application/json")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > CHAT_EVENT_BODY_LIMIT:
                response = error_response(413, "payload_too_large",
                                          f"a chat event's body is at most {CHAT_EVENT_BODY_LIMIT:,} bytes")
                await response(scope, receive, send)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            event = json.loads(body)
        except UnicodeDecodeError:
            # Gradio would say only "There was an error parsing the body"; the API names the cause.
            await error_response(400, "invalid_json", BODY_NOT_UTF8)(scope, receive, send)
            return
        except ValueError:
            event = None  # not JSON: Gradio answers that itself
        refusal = None
        if _has_lone_surrogate(event):
            refusal = ("the request is not valid Unicode: it contains an unpaired surrogate "
                       "(\\ud800-\\udfff)")
        elif _names_a_remote_file(event):
            refusal = "a chat event may not name a file by URL; upload the file through the page instead"
        if refusal is not None:
            await error_response(400, "invalid_input", refusal)(scope, receive, send)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def ui_login(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The chat's (user, password) from the environment, or None when the chat is open."""
    password = secret("QA_UI_PASSWORD", "QA_API_KEY", environ=environ)
    if password is None:
        return None
    return secret("QA_UI_USER", environ=environ) or DEFAULT_UI_USER, password


def create_app(settings: Settings, service: QAService | None = None,
               environ: Mapping[str, str] | None = None) -> FastAPI:
    service = service or QAService(settings)
    # A configured LLM that cannot start stops the server now, with one line saying what to set.
    service.start_llm()
    # The API routes are registered before the mount at "/", so they take precedence over the chat.
    app = build_api(service, settings, api_key=secret("QA_API_KEY", environ=environ))
    blocks = ui.build_ui(service, settings)
    # Without max_file_size, Gradio's own upload route takes files of any size into its temp folder.
    # The footer keeps "Use via API" and "Built with Gradio"; its default also adds Gradio's own
    # "Settings" (display settings), a second "Settings" beside the chat's, and "runs" history.
    # Gradio 6.31 leaves the separator that stood before its Settings link at the end: hidden.
    app = gr.mount_gradio_app(app, blocks, path="/", auth=ui_login(environ), theme=ui.offline_theme(),
                              max_file_size=settings.server.max_upload_bytes, footer_links=["api", "gradio"],
                              css='footer[aria-label="Gradio footer navigation"] > .divider:last-child '
                                  "{ display: none; }")
    # Gradio checks that a file an event names was uploaded by a client (inside its upload folder)
    # only once has_launched is set, which launch() does and mount_gradio_app does not: unset, a
    # client could make an event read any file on the server. Nothing else in Gradio 6.31 reads it
    # (processing_utils._check_allowed, and the dev reloader, which sets it too).
    blocks.has_launched = True
    # Innermost, unlike add_middleware: the host and origin guard refuses cross-site requests
    # before any body is read.
    app.user_middleware.append(Middleware(ChatEventGuard))
    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory qa._server:app_from_environment --workers N``: each worker
    process builds its own service from config/default.toml and the ``QA_*`` variables."""
    return create_app(load_settings())
