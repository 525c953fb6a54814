"""One ASGI app: the HTTP API under /v1 (and health checks), the Gradio chat at /.

With ``QA_API_KEY`` set, the API wants ``Authorization: Bearer <key>`` and the chat
sits behind Gradio's login: user ``QA_UI_USER`` (default ``qa``), password
``QA_UI_PASSWORD`` (default: the API key itself). Setting ``QA_UI_PASSWORD``
alone puts the chat behind the login and leaves the API open.
"""

from __future__ import annotations

from typing import Mapping

import gradio as gr
from fastapi import FastAPI

import ui
from qa._api import build_api
from qa._config import Settings, load_settings, secret
from qa._service import QAService

DEFAULT_UI_USER = "qa"


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
    return gr.mount_gradio_app(app, ui.build_ui(service, settings), path="/", auth=ui_login(environ),
                               theme=ui.offline_theme())


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory qa._server:app_from_environment --workers N``: each worker
    process builds its own service from config/default.toml and the ``QA_*`` variables."""
    return create_app(load_settings())
