"""The ``openai`` backend: llama-index's :class:`OpenAILike` on the official ``openai`` client.

For OpenAI itself and every server that speaks its ``/v1/chat/completions``: vLLM,
Ollama, llama.cpp's server, LM Studio. ``OpenAILike`` gets ``max_retries=0`` so its
own retry layer and the ``openai`` client's do not multiply ours (:class:`ChatModel`).
A module of its own so that the extractive default never imports the client
(half a second of every ``qa`` command's start).
"""

from __future__ import annotations

from typing import Mapping

import httpx
import openai
from llama_index.llms.openai_like import OpenAILike

from qa.llm._chat_model import ChatModel
from qa._config import LLMSettings, secret
from qa._errors import ConfigError

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_STARTUP_PROBE_TIMEOUT_S = 10.0
# Errors worth another try: the server was busy or broken for a moment, or slow.
_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
              openai.APIConnectionError, httpx.TimeoutException)


def _name_failure(exc: Exception) -> str | None:
    if isinstance(exc, openai.APITimeoutError):
        return "did not answer in time"
    if isinstance(exc, openai.APIStatusError):
        return f"answered HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot be reached"
    return None


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


def openai_chat_model(settings: LLMSettings, environ: Mapping[str, str] | None) -> ChatModel:
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
                     settings.max_answer_tokens, settings.max_retries, settings.retry_backoff_s,
                     retryable=_RETRYABLE, name_failure=_name_failure)
