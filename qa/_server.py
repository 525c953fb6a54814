"""One ASGI app: the HTTP API under /v1 (and health checks), the Gradio chat at /."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

import ui
from qa._api import build_api
from qa._config import Settings
from qa._service import QAService


def create_app(settings: Settings, service: QAService | None = None) -> FastAPI:
    service = service or QAService(settings)
    app = build_api(service, settings)
    return gr.mount_gradio_app(app, ui.build_ui(service, settings), path="/")
