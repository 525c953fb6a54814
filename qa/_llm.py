"""The configured LLM, as a llama-index LLM behind :class:`ChatModel`'s streaming interface.

``openai``: llama-index's :class:`OpenAILike` (the official ``openai`` client underneath),
for OpenAI itself and every server that speaks its ``/v1/chat/completions``; see
:mod:`qa._llm_openai`. ``llama_cpp``: a GGUF file run in this process by
``llama-cpp-python``, wrapped as a llama-index ``CustomLLM`` that uses the chat template
stored in the GGUF (llama-index's own ``LlamaCPP`` formats every model as Llama 2).

Start-up problems (no key, a server that cannot be reached, a missing file) are
:class:`ConfigError` s naming what to set; failures while answering are
:class:`LLMError` s, which the answer path turns into the extractive answer.
Each backend's client is imported only when that backend starts: the extractive
default loads neither.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage, ChatResponse, ChatResponseGen, CompletionResponse, CompletionResponseGen, LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import PrivateAttr

from qa._chat_model import ChatModel
from qa._config import LLMSettings
from qa._errors import ConfigError

__all__ = ["ChatModel", "LlamaCppChat", "start_chat_model"]


class LlamaCppChat(CustomLLM):
    """A GGUF model run by llama-cpp-python, chatting through the model's own chat template."""

    model_path: str
    context_window: int = 2048
    max_tokens: int = 300
    temperature: float = 0.0
    _model: Any = PrivateAttr()
    # One llama.cpp context serves one generation at a time; the API answers from many threads.
    _busy: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, model_path: str, context_window: int, max_tokens: int, temperature: float,
                 threads: int = 0) -> None:
        super().__init__(model_path=model_path, context_window=context_window, max_tokens=max_tokens,
                         temperature=temperature)
        try:
            import llama_cpp  # noqa: PLC0415  (optional and heavy: only this backend needs it)
        except ImportError:
            raise ConfigError(
                "llm.backend = llama_cpp needs llama-cpp-python: `pip install -e .[llama-cpp]`"
            ) from None
        try:
            self._model = llama_cpp.Llama(model_path=model_path, n_ctx=context_window,
                                          n_threads=threads or None, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load the GGUF model {model_path}: {exc}") from None

    @classmethod
    def class_name(cls) -> str:
        return "LlamaCppChat"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.context_window, num_output=self.max_tokens,
                           is_chat_model=True, model_name=Path(self.model_path).name)

    def _chat_kwargs(self, messages: Sequence[ChatMessage]) -> dict:
        return {"messages": [{"role": m.role.value, "content": m.content or ""} for m in messages],
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        with self._busy:
            result = self._model.create_chat_completion(**self._chat_kwargs(messages))
        return ChatResponse(message=ChatMessage(role="assistant", content=result["choices"][0]["message"]["content"]))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        def generate() -> ChatResponseGen:
            text = ""
            with self._busy:
                for chunk in self._model.create_chat_completion(**self._chat_kwargs(messages), stream=True):
                    delta = chunk["choices"][0]["delta"].get("content") or ""
                    text += delta
                    yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=delta)

        return generate()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.chat([ChatMessage(role="user", content=prompt)]).message.content or ""

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        for response in self.stream_chat([ChatMessage(role="user", content=prompt)]):
            yield CompletionResponse(text=response.message.content or "", delta=response.delta)


def _llama_cpp_model(settings: LLMSettings) -> ChatModel:
    if not settings.model_path:
        raise ConfigError("llm.backend = llama_cpp needs the GGUF file: set QA_LLM_MODEL_PATH")
    path = Path(settings.model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"the GGUF file {path} does not exist: set QA_LLM_MODEL_PATH to a .gguf file")
    llm = LlamaCppChat(str(path), settings.context_window, settings.max_answer_tokens,
                       settings.temperature, settings.threads)
    return ChatModel(llm, f"the local model {path.name}", settings.context_window, settings.max_answer_tokens)


def start_chat_model(settings: LLMSettings, environ: Mapping[str, str] | None = None) -> ChatModel | None:
    """The configured model, ready to answer; None for the extractive backend."""
    if settings.backend == "openai":
        # Here, not at the top: the openai client costs half a second of every start, and the
        # extractive default never needs it. No cycle: qa._llm_openai does not import this module.
        from qa._llm_openai import openai_chat_model  # noqa: PLC0415
        return openai_chat_model(settings, environ)
    if settings.backend == "llama_cpp":
        return _llama_cpp_model(settings)
    return None
