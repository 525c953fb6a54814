"""The fused int8 embedding model: close to the original, derived once, cached atomically."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import qa._embedding as embedding
import qa._model_build as model_build
from qa import EmbeddingError
from qa._embedding import FUSED_MODEL_NAME, ORIGINAL_MODEL_NAME, OnnxMiniLMEmbedding

from conftest import REPO, SEED_FILE


def _real_texts() -> list[str]:
    paragraphs = [p.strip() for p in SEED_FILE.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    with open(REPO / "tests" / "data" / "bbc_dev.jsonl", encoding="utf-8") as lines:
        questions = [json.loads(line)["question"] for line in lines][:40]
    return paragraphs + questions + [" ".join(paragraphs)]  # the last one is truncated to 256 tokens


TEXTS = _real_texts()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv("QA_MODEL_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def original_vectors() -> np.ndarray:
    return OnnxMiniLMEmbedding(fused=False).embed(TEXTS)


_BUILT: dict[str, bytes] = {}


@pytest.fixture(autouse=True)
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the model builder, which really builds once per test session (to save time)."""
    calls: list[int] = []
    real = model_build.build_fast_model

    def counting(source, **kwargs):
        calls.append(1)
        key = f"{source}{kwargs}"
        if key not in _BUILT:
            _BUILT[key] = real(source, **kwargs)
        return _BUILT[key]

    monkeypatch.setattr(model_build, "build_fast_model", counting)
    return calls


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fused_vectors_match_the_original_model(cache: Path, original_vectors: np.ndarray) -> None:
    fused = OnnxMiniLMEmbedding()
    assert fused.model_name == FUSED_MODEL_NAME != ORIGINAL_MODEL_NAME
    vectors = fused.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * original_vectors).sum(axis=1)
    assert cosines.min() >= 0.98 and cosines.mean() >= 0.99, cosines
    # A text's vector does not depend on the batch it is padded in (order of the input kept).
    alone = np.stack([fused.embed([text])[0] for text in TEXTS[:5]])
    np.testing.assert_allclose(alone, vectors[:5], atol=0.02)
    assert fused.embed([]).shape == (0, 384)


def test_cache_is_built_once_then_reused(cache: Path, builds: list[int], capfd: pytest.CaptureFixture[str],
                                         caplog: pytest.LogCaptureFixture) -> None:
    first = OnnxMiniLMEmbedding()
    assert len(builds) == 1
    (name,) = _files(cache)
    assert name.startswith(FUSED_MODEL_NAME) and name.endswith(".onnx")
    assert "Building the fast embedding model" in capfd.readouterr().err + caplog.text  # stderr, or the log
    caplog.clear()
    second = OnnxMiniLMEmbedding()
    assert len(builds) == 1 and _files(cache) == [name]
    assert "Building" not in capfd.readouterr().err + caplog.text
    np.testing.assert_array_equal(first.embed(TEXTS[:8]), second.embed(TEXTS[:8]))


def test_cache_file_appears_only_whole(cache: Path, builds: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[tuple[Path, Path, int]] = []
    real_replace = os.replace

    def spy(source, destination):
        source, destination = Path(source), Path(destination)
        assert not destination.exists() and source.parent == destination.parent
        replaced.append((source, destination, source.stat().st_size))
        real_replace(source, destination)

    monkeypatch.setattr(embedding.os, "replace", spy)
    OnnxMiniLMEmbedding()
    ((temporary, final, size),) = replaced
    assert temporary.name.endswith(".tmp") and final.stat().st_size == size > 10_000_000
    assert _files(cache) == [final.name]


def test_failed_cache_write_leaves_nothing_and_still_embeds(cache: Path, builds: list[int],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           original_vectors: np.ndarray) -> None:
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embedding.os, "fsync", disk_full)
    fused = OnnxMiniLMEmbedding()  # the same model, built in memory for this process
    assert _files(cache) == []
    assert ((fused.embed(TEXTS[:8]) * original_vectors[:8]).sum(axis=1) >= 0.98).all()
    monkeypatch.undo()


def test_concurrent_builders_leave_one_whole_file(cache: Path) -> None:
    source = embedding._bundled_model_files()[0]
    with ThreadPoolExecutor(3) as pool:
        paths = list(pool.map(lambda _: embedding._fused_model(source, lambda built: None), range(3)))
    assert len(set(paths)) == 1 and _files(cache) == [paths[0].name]
    OnnxMiniLMEmbedding().embed(TEXTS[:2])


def test_damaged_cache_file_is_rebuilt(cache: Path, builds: list[int]) -> None:
    OnnxMiniLMEmbedding()
    (path,) = cache.iterdir()
    path.write_bytes(b"not an onnx model")
    OnnxMiniLMEmbedding().embed(TEXTS[:2])
    assert len(builds) == 2 and path.stat().st_size > 10_000_000


def test_model_that_disagrees_with_the_original_is_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding, "_MIN_AGREEMENT", 1.01)
    with pytest.raises(EmbeddingError, match="disagrees"):
        OnnxMiniLMEmbedding()
    assert _files(cache) == []
