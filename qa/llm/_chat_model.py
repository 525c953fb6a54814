"""The configured LLM behind one small streaming interface: retries, backoff, named failures.

Retries are ours, not the client's: a request refused with 429 or 5xx, or timed out,
is retried with backoff only until its first piece of text arrives, since a stream
cannot be resumed halfway. Which failures those are is the backend's to say
(:mod:`qa.llm._openai` for the openai client's), so this module imports no client.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import httpx
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.llm import LLM

from qa._errors import LLMError

MAX_RETRY_WAIT_S = 30.0


@dataclass
class ChatModel:
    """The configured model: streams answers, retries what is worth retrying, names failures."""

    llm: LLM
    description: str  # for notices and logs: which model where
    context_window: int
    max_answer_tokens: int
    max_retries: int = 0
    retry_backoff_s: float = 0.5
    # The backend's failures worth another try (busy, broken for a moment, slow), and their names.
    retryable: tuple[type[Exception], ...] = (httpx.TimeoutException,)
    name_failure: Callable[[Exception], str | None] = lambda exc: None

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
            except self.retryable as exc:
                if produced or attempt >= self.max_retries:
                    raise self._failure(exc) from None
                time.sleep(self._backoff(attempt, exc))
                attempt += 1
            except Exception as exc:  # noqa: BLE001  (any failure of the model means: answer extractively)
                raise self._failure(exc) from None

    def complete(self, messages: Sequence[ChatMessage]) -> str:
        return "".join(self.stream(messages))

    def first_token_probabilities(self, messages: Sequence[ChatMessage], top: int = 10) -> dict[str, float]:
        """The likeliest first tokens of the reply and their probabilities (one token is generated)."""
        try:
            return first_token_distribution(self.llm, messages, top)
        except Exception as exc:  # noqa: BLE001  (any failure: the caller goes on without the model)
            raise self._failure(exc) from None

    def close(self) -> None:
        """Stop what this model runs; nothing for a model behind a server someone else runs."""

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
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(f"{self.description} did not answer in time")
        named = self.name_failure(exc)
        return LLMError(f"{self.description} {named}" if named else f"{self.description} failed: {type(exc).__name__}")


def first_token_distribution(llm: LLM, messages: Sequence[ChatMessage], top: int) -> dict[str, float]:
    """One token of ``llm``'s reply to ``messages``: its ``top`` likeliest values and their probabilities."""
    return token_probabilities(one_token(llm, top).chat(messages))


def one_token(llm: LLM, top: int) -> LLM:
    """``llm`` set to generate one token and report the ``top`` likeliest (the client's own
    settings win over per-call arguments, so a copy it is; it shares the connection pool)."""
    return llm.model_copy(update={"max_tokens": 1, "logprobs": True, "top_logprobs": top})


def token_probabilities(response: ChatResponse) -> dict[str, float]:
    """The first token's top alternatives from a chat response with logprobs; a server that sends
    none has nothing to say, which is an error (a judge cannot read a verdict from it)."""
    if not response.logprobs or not response.logprobs[0]:
        raise ValueError("the server sent no logprobs")
    return {entry.token: math.exp(entry.logprob) for entry in response.logprobs[0]}


def _retry_after_seconds(value: str, default: float) -> float:
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return parsed.timestamp() - time.time() if parsed else default
