"""The Gradio chat over the same service as ``qa ask``."""

from __future__ import annotations

import gradio as gr

from qa import QAService, QAError, Settings


def build_ui(service: QAService, settings: Settings) -> gr.Blocks:
    def respond(message: str, history: list) -> str:
        try:
            return service.ask(message).answer
        except QAError as exc:
            return f"⚠️ {exc.message}"

    with gr.Blocks(title="News QA") as blocks:
        gr.ChatInterface(respond)
    return blocks
