"""The keyword (BM25) index, derived from what Chroma holds.

It is never a source of truth: it is rebuilt from the committed chunks in
Chroma whenever the index generation changes, and cached on disk under the
generation's token so a fresh process does not rebuild it. bm25s does the
scoring; the tokenizer is ours (:func:`qa._text.terms`) so that the keyword
index and the extractive answerer agree on what a term is.

Two BM25 indexes live here: one over chunks (paragraphs), and one over whole
articles (title once, then every chunk), which the re-scorer uses to favour
paragraphs of the article a question is about even when the paragraph itself
shares few words with the question.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import bm25s
import numpy as np

from qa._cache import read_cached, write_cached
from qa._models import indexed_text
from qa._text import terms

_CACHE_VERSION = 3


@dataclass(frozen=True)
class ChunkRef:
    chunk_id: str
    article_id: str
    paragraph_numbers: tuple[int, ...]


def parse_paragraph_numbers(value: str) -> tuple[int, ...]:
    return tuple(int(n) for n in value.split(",") if n)


@dataclass
class _Articles:
    """BM25 over whole articles; ``ids[i]`` is the article of row ``i``."""

    ids: list[str]
    bm25: bm25s.BM25

    def __post_init__(self) -> None:
        self.rows = {article_id: row for row, article_id in enumerate(self.ids)}

    def __getstate__(self) -> dict:
        return {"ids": self.ids, "bm25": self.bm25}  # rows are derived, not cached

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()


class KeywordIndex:
    def __init__(self, generation: str, refs: list[ChunkRef], bm25: bm25s.BM25 | None,
                 document_frequency: dict[str, int], articles: _Articles | None = None) -> None:
        self.generation = generation
        self.refs = refs
        self._bm25 = bm25
        self._df = document_frequency
        self._articles = articles
        self._position = {ref.chunk_id: i for i, ref in enumerate(refs)}

    @classmethod
    def build(cls, generation: str, chunks: Iterable[tuple[str, str, dict]]) -> "KeywordIndex":
        refs: list[ChunkRef] = []
        corpus: list[list[str]] = []
        by_article: dict[str, list[str]] = {}
        df: Counter[str] = Counter()
        for chunk_id, text, metadata in chunks:
            article_id = metadata["article_id"]
            refs.append(ChunkRef(chunk_id, article_id, parse_paragraph_numbers(metadata["paragraphs"])))
            context = metadata.get("context", "")
            tokens = terms(indexed_text(context, text))
            corpus.append(tokens)
            df.update(set(tokens))
            if article_id not in by_article:  # the title once per article, not once per chunk
                by_article[article_id] = terms(context)
            by_article[article_id].extend(terms(text))
        if not corpus:
            return cls(generation, refs, None, {})
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        article_bm25 = bm25s.BM25()
        article_bm25.index(list(by_article.values()), show_progress=False)
        return cls(generation, refs, bm25, dict(df), _Articles(list(by_article), article_bm25))

    def __len__(self) -> int:
        return len(self.refs)

    def idf(self, term: str) -> float:
        n = max(len(self.refs), 1)
        df = self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def position(self, chunk_id: str) -> int | None:
        """Row of ``chunk_id`` in :meth:`scores`."""
        return self._position.get(chunk_id)

    def _known(self, query_terms: list[str]) -> list[str]:
        """The query terms the index has seen (bm25s rejects the others)."""
        return [t for t in query_terms if t in self._df]

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every chunk (row i is ``refs[i]``)."""
        known = self._known(query_terms)
        if self._bm25 is None or not known:
            return np.zeros(len(self.refs), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def search(self, query_terms: list[str], n: int,
               scores: np.ndarray | None = None) -> list[tuple[ChunkRef, float]]:
        """The ``n`` best chunks with a positive score, best first."""
        if scores is None:
            scores = self.scores(query_terms)
        n = min(n, len(scores))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        return [(self.refs[i], float(scores[i])) for i in top if scores[i] > 0]

    def article_scores(self, query_terms: list[str], article_ids: Iterable[str]) -> dict[str, float]:
        """Article-level BM25 of ``article_ids``, divided by the best score of any article (0..1].

        Only the asked-for articles are looked up: at a million paragraphs a dictionary of every
        matching article cost more than the rest of the query."""
        known = self._known(query_terms)
        if self._articles is None or not known:
            return {}
        scores = np.asarray(self._articles.bm25.get_scores(known))
        best = float(scores.max()) if len(scores) else 0.0
        if best <= 0:
            return {}
        rows = self._articles.rows
        return {a: float(scores[rows[a]]) / best for a in article_ids if a in rows}

    # -- cache -------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        write_cached(folder / f"keyword-{self.generation}.pkl", _CACHE_VERSION,
                     (self.refs, self._bm25, self._df, self._articles))

    @classmethod
    def load(cls, folder: Path, generation: str) -> "KeywordIndex | None":
        content = read_cached(folder / f"keyword-{generation}.pkl", _CACHE_VERSION)
        if content is None:
            return None
        refs, bm25, df, articles = content
        return cls(generation, refs, bm25, df, articles)
