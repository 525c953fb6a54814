"""The configured LLM behind :class:`ChatModel`'s streaming interface.

``openai``: llama-index's :class:`OpenAILike` (the official ``openai`` client underneath),
for OpenAI itself and every server that speaks its ``/v1/chat/completions``; see
:mod:`qa.llm._openai`. ``llama_cpp``: a GGUF file run by llama-cpp-python in a child
process that ``qa`` starts, watches and restarts (:mod:`qa.llm._supervisor`), so a native
crash or hang of the model never takes the server down. ``local``: the same, with the
Qwen2.5-Coder-1.5B-Instruct GGUF assembled from its installed packages
(:mod:`qa.llm._local_model`).

Start-up problems (no key, a server that cannot be reached, a missing file) are
:class:`ConfigError` s naming what to set; failures while answering are
:class:`LLMError` s, which the answer path turns into the extractive answer.
Each backend's client is imported only when that backend starts: the extractive
default loads neither ``openai`` nor ``llama_cpp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from qa._config import LLMSettings
from qa._errors import ConfigError
from qa.llm._chat_model import ChatModel

__all__ = ["ChatModel", "start_chat_model"]


def _gguf_file(settings: LLMSettings) -> Path:
    if not settings.model_path:
        raise ConfigError("llm.backend = llama_cpp needs the GGUF file: set QA_LLM_MODEL_PATH")
    path = Path(settings.model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"the GGUF file {path} does not exist: set QA_LLM_MODEL_PATH to a .gguf file")
    return path


def start_chat_model(settings: LLMSettings, environ: Mapping[str, str] | None = None) -> ChatModel | None:
    """The configured model, ready to answer; None for the extractive backend."""
    # The imports are here, not at the top: the openai client costs half a second of every start,
    # and the extractive default needs neither it nor the supervisor. No cycle: those modules do
    # not import this one.
    if settings.backend == "openai":
        from qa.llm._openai import openai_chat_model  # noqa: PLC0415
        return openai_chat_model(settings, environ)
    if settings.backend in ("llama_cpp", "local"):
        from qa.llm._supervisor import SupervisedChatModel  # noqa: PLC0415
        if settings.backend == "local":
            from qa.llm._local_model import local_model_path  # noqa: PLC0415
            return SupervisedChatModel(local_model_path(), settings)
        return SupervisedChatModel(_gguf_file(settings), settings)
    return None
