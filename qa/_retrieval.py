"""Hybrid retrieval over paragraphs: dense (Chroma) + BM25, fused by weighted reciprocal rank.

Written against llama-index's ``BaseRetriever`` so it composes with its query
engines; the fusion itself is ours because it works on paragraphs, not
chunks: a chunk of two merged paragraphs ranks both, and the pieces of a split
paragraph count once, at the best piece's rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from qa._config import RetrievalSettings
from qa._keyword import KeywordIndex, parse_paragraph_numbers
from qa._models import ArticleRecord, Paragraph, RetrievedParagraph
from qa._store import ChromaIndex
from qa._text import terms


@dataclass(frozen=True)
class IndexSnapshot:
    """One consistent view of the index: queries read it, ingest replaces it whole."""

    generation: str
    records: dict[str, ArticleRecord]
    keyword: KeywordIndex
    paragraph_count: int = field(default=0)

    @classmethod
    def of(cls, generation: str, records: dict[str, ArticleRecord], keyword: KeywordIndex) -> "IndexSnapshot":
        return cls(generation, records, keyword, sum(len(r.paragraphs) for r in records.values()))


@dataclass
class Candidate:
    """A retrieved paragraph with the signals the answerer and the abstention use."""

    record: ArticleRecord
    paragraph: Paragraph
    score: float = 0.0  # fused
    dense: float = 0.0  # best cosine similarity of its chunks to the query
    keyword: float = 0.0  # best BM25 score of its chunks

    def public(self) -> RetrievedParagraph:
        return RetrievedParagraph(
            doc=self.record.doc,
            article_id=self.record.article_id,
            title=self.record.title,
            paragraph=self.paragraph.number,
            start=self.paragraph.start,
            end=self.paragraph.end,
            text=self.paragraph.text,
            section=self.paragraph.section,
            score=round(self.score, 6),
        )


class HybridRetriever(BaseRetriever):
    def __init__(self, index: ChromaIndex, embedder, snapshot: IndexSnapshot,
                 settings: RetrievalSettings) -> None:
        super().__init__()
        self._index = index
        self._embedder = embedder
        self._snapshot = snapshot
        self._settings = settings

    def candidates(self, query: str, k: int, query_vector: np.ndarray | None = None) -> list[Candidate]:
        """The ``k`` best paragraphs for ``query``, best first."""
        snapshot = self._snapshot
        if query_vector is None:
            query_vector = self._embedder.embed([query])[0]
        n = max(self._settings.candidates, k)
        fused: dict[tuple[str, int], Candidate] = {}

        def add(article_id: str, numbers: tuple[int, ...], rank: int, weight: float,
                dense: float = 0.0, keyword: float = 0.0) -> None:
            record = snapshot.records.get(article_id)
            if record is None:
                return  # a chunk of an article this snapshot does not have committed
            for number in numbers:
                key = (article_id, number)
                candidate = fused.get(key)
                if candidate is None:
                    if not 0 < number <= len(record.paragraphs):
                        continue
                    candidate = fused[key] = Candidate(record, record.paragraphs[number - 1])
                candidate.dense = max(candidate.dense, dense)
                candidate.keyword = max(candidate.keyword, keyword)
                candidate.score += weight / (self._settings.rrf_k + rank)

        seen: set[tuple[str, str]] = set()
        dense_hits = [
            (meta["article_id"], parse_paragraph_numbers(meta["paragraphs"]), cosine)
            for _, cosine, meta in self._index.dense_search(query_vector, n)
            if meta.get("content_hash") == getattr(snapshot.records.get(meta.get("article_id")), "content_hash", None)
        ]
        for rank, (article_id, numbers, cosine) in enumerate(_dedupe(dense_hits, seen, "d"), 1):
            add(article_id, numbers, rank, 1.0, dense=cosine)
        keyword_hits = [
            (ref.article_id, ref.paragraph_numbers, score)
            for ref, score in snapshot.keyword.search(terms(query), n)
        ]
        for rank, (article_id, numbers, score) in enumerate(_dedupe(keyword_hits, seen, "k"), 1):
            add(article_id, numbers, rank, self._settings.keyword_weight, keyword=score)
        ranked = sorted(fused.values(), key=lambda c: c.score, reverse=True)
        return ranked[:k]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [
            NodeWithScore(
                node=TextNode(
                    id_=f"{c.record.article_id}#{c.paragraph.number}",
                    text=c.paragraph.text,
                    metadata=c.public().model_dump(exclude={"text", "score"}),
                ),
                score=c.score,
            )
            for c in self.candidates(query_bundle.query_str, self._settings.top_k)
        ]


def _dedupe(hits: list[tuple[str, tuple[int, ...], float]], seen: set, tag: str):
    """Pieces of one split paragraph count once, at the best piece's rank."""
    for article_id, numbers, value in hits:
        key = (tag, article_id, numbers)
        if key in seen:
            continue
        seen.add(key)
        yield article_id, numbers, value
