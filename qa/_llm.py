"""The configured LLM, as a llama-index LLM behind one small streaming interface.

``openai``: llama-index's :class:`OpenAILike` (the official ``openai`` client underneath),
for OpenAI itself and every server that speaks its ``/v1/chat/completions``: vLLM,
Ollama, llama.cpp's server, LM Studio. ``llama_cpp``: a GGUF file run in this process by
``llama-cpp-python``, wrapped as a llama-index ``CustomLLM`` that uses the chat template
stored in the GGUF (llama-index's own ``LlamaCPP`` formats every model as Llama 2).

Start-up problems (no key, a server that cannot be reached, a missing file) are
:class:`ConfigError` s naming what to set; failures while answering are
:class:`LLMError` s, which the answer path turns into the extractive answer.

Retries are ours, not the client's: a request refused with 429 or 5xx, or timed out,
is retried with backoff only until its first piece of text arrives, since a stream
cannot be resumed halfway. ``OpenAILike`` gets ``max_retries=0`` so its own retry
layer and the ``openai`` client's do not multiply ours.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import httpx
import openai
from llama_index.core.base.llms.types import (
    ChatMessage, ChatResponse, ChatResponseGen, CompletionResponse, CompletionResponseGen, LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from llama_index.llms.openai_like import OpenAILike
from pydantic import PrivateAttr

from qa._config import LLMSettings, secret
from qa._errors import ConfigError, LLMError

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
MAX_RETRY_WAIT_S = 30.0
_STARTUP_PROBE_TIMEOUT_S = 10.0
# Errors worth another try: the server was busy or broken for a moment, or slow.
_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
              openai.APIConnectionError, httpx.TimeoutException)


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


@dataclass
class ChatModel:
    """The configured model: streams answers, retries what is worth retrying, names failures."""

    llm: LLM
    description: str  # for notices and logs: which model where
    context_window: int
    max_answer_tokens: int
    max_retries: int = 0
    retry_backoff_s: float = 0.5

    def stream(self, messages: Sequence[ChatMessage]) -> Iterator[str]:
        """The answer's text as it is generated; :class:`LLMError` when the model fails."""
        attempt = 0
        while True:
            produced = False
            try:
                for response in self.llm.stream_chat(messages):
                    if response.delta:
                        produced = True
                        yield response.delta
                return
            except _RETRYABLE as exc:
                if produced or attempt >= self.max_retries:
                    raise self._failure(exc) from None
                time.sleep(self._backoff(attempt, exc))
                attempt += 1
            except Exception as exc:  # noqa: BLE001  (any failure of the model means: answer extractively)
                raise self._failure(exc) from None

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        return "".join(self.stream(messages))

    def _backoff(self, attempt: int, exc: Exception) -> float:
        """Seconds before the next try: the server's Retry-After when it sends one, else exponential."""
        response = getattr(exc, "response", None)
        headers = response.headers if isinstance(response, httpx.Response) else {}
        wait = self.retry_backoff_s * 2 ** attempt
        if headers.get("retry-after-ms"):
            try:
                wait = float(headers["retry-after-ms"]) / 1000
            except ValueError:
                pass
        elif headers.get("retry-after"):
            wait = _retry_after_seconds(headers["retry-after"], wait)
        return min(max(wait, 0.0), MAX_RETRY_WAIT_S)

    def _failure(self, exc: Exception) -> LLMError:
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return LLMError(f"{self.description} did not answer in time")
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"{self.description} answered HTTP {exc.status_code}")
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"{self.description} cannot be reached")
        return LLMError(f"{self.description} failed: {type(exc).__name__}")


def _retry_after_seconds(value: str, default: float) -> float:
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return parsed.timestamp() - time.time() if parsed else default


def _probe_openai_server(settings: LLMSettings, base_url: str, key: str) -> list[str]:
    """The model ids the server lists; :class:`ConfigError` when it cannot be reached or refuses the key."""
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0,
                           timeout=min(settings.timeout_s, _STARTUP_PROBE_TIMEOUT_S))
    try:
        return [model.id for model in client.models.list()]
    except openai.AuthenticationError:
        raise ConfigError(f"the LLM server at {base_url} refused the API key: set QA_LLM_API_KEY "
                          "(or OPENAI_API_KEY) to a key it accepts") from None
    except openai.NotFoundError:
        return []  # a server without /models still answers chats
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise ConfigError(f"cannot reach the LLM server at {base_url}: start it, or set QA_LLM_BASE_URL "
                          "to where it listens (or QA_LLM_BACKEND=extractive)") from None
    except openai.APIStatusError as exc:
        raise ConfigError(f"the LLM server at {base_url} answered HTTP {exc.status_code} to GET /models: "
                          "check QA_LLM_BASE_URL (it usually ends in /v1)") from None
    finally:
        client.close()


def _openai_model(settings: LLMSettings, environ: Mapping[str, str] | None) -> ChatModel:
    key = secret("QA_LLM_API_KEY", "OPENAI_API_KEY", environ=environ)
    if not key and not settings.base_url:
        raise ConfigError("llm.backend = openai needs OPENAI_API_KEY (or QA_LLM_API_KEY), or "
                          "QA_LLM_BASE_URL pointing at a local OpenAI-compatible server")
    base_url = (settings.base_url or "https://api.openai.com/v1").rstrip("/")
    key = key or "not-needed"  # local servers ignore it, the client insists on one
    listed = _probe_openai_server(settings, base_url, key)
    model = settings.model or (listed[0] if listed and settings.base_url else DEFAULT_OPENAI_MODEL)
    if settings.model and listed and settings.model not in listed and settings.base_url:
        raise ConfigError(f"the LLM server at {base_url} has no model {settings.model!r}; set QA_LLM_MODEL "
                          f"to one of: {', '.join(listed[:10])}")
    llm = OpenAILike(
        model=model, api_base=base_url, api_key=key, is_chat_model=True,
        context_window=settings.context_window, max_tokens=settings.max_answer_tokens,
        temperature=settings.temperature, timeout=settings.timeout_s, max_retries=0,
    )
    return ChatModel(llm, f"the LLM ({model} at {base_url})", settings.context_window,
                     settings.max_answer_tokens, settings.max_retries, settings.retry_backoff_s)


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
        return _openai_model(settings, environ)
    if settings.backend == "llama_cpp":
        return _llama_cpp_model(settings)
    return None
