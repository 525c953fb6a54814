"""An index records the embedding model of its vectors and refuses to mix in another's."""

from __future__ import annotations

import os
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

from qa import QAService, chunk_article, parse_file
from qa._errors import IndexModelMismatch
from qa._store import LEGACY_EMBEDDING_MODEL
from conftest import REPO, SEEDS


def test_the_index_records_the_model_of_its_vectors(seeded_service: QAService) -> None:
    assert seeded_service.index.embedding_model() == seeded_service.embedder.model_name
    seeded_service.delete_document(seeded_service.documents()[0].article_id)
    assert seeded_service.index.embedding_model() == seeded_service.embedder.model_name  # kept


def test_another_models_index_is_refused_until_rebuilt(seeded_service: QAService) -> None:
    seeded_service.index._bump_generation([], "some-other-model")  # as if another model built it
    with pytest.raises(IndexModelMismatch, match="some-other-model.*qa ingest --rebuild"):
        seeded_service.ask("Who condemned the deployment of THAAD?")
    with pytest.raises(IndexModelMismatch):
        seeded_service.ingest([SEEDS])
    seeded_service.ingest([SEEDS], rebuild=True)
    assert not seeded_service.ask("Who condemned the deployment of THAAD?").abstained


def test_an_index_from_before_the_record_counts_as_the_packaged_model(seeded_service: QAService) -> None:
    index = seeded_service.index
    index._articles.upsert(ids=["__generation__"], embeddings=[[1.0]], metadatas=[{"token": "old", "embedding_model": None}],
                           documents=[""])
    assert index.embedding_model() == LEGACY_EMBEDDING_MODEL


def test_cli_reports_the_mismatch_in_one_line(seeded_service: QAService) -> None:
    seeded_service.index._bump_generation([], "some-other-model")
    env = {**os.environ, "QA_INDEX_DIR": seeded_service.settings.index.dir}
    result = subprocess.run([sys.executable, "-m", "qa.cli", "ask", "Who condemned THAAD?"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "some-other-model" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_commit_larger_than_chromas_largest_write_is_split(service: QAService, tmp_path: Path) -> None:
    # Chroma refuses writes of more than get_max_batch_size() records (5,461 embedded); one
    # commit of an article with more chunks than that must still land whole.
    limit = service.index._client.get_max_batch_size()
    source = tmp_path / "long.txt"
    source.write_text("A very long article\n\n" + "\n\n".join(
        f"Paragraph number {n} of the long article says something different each time." for n in range(limit + 50)
    ), encoding="utf-8")
    article = parse_file(source, tmp_path)
    chunks = chunk_article(article)
    assert len(chunks) > limit
    vectors = np.random.default_rng(0).normal(size=(len(chunks), 384)).astype(np.float32)
    service.index.write_articles([(article, chunks, vectors)], service.embedder.model_name)
    assert service.index.chunk_count() == len(chunks)
    assert len(service.index.records()[article.article_id].paragraphs) == limit + 50
