"""The keyword (BM25) index, derived from what Chroma holds.

It is never a source of truth: it is rebuilt from the committed chunks in
Chroma whenever the index generation changes, and cached on disk under the
generation's token so a fresh process does not rebuild it. bm25s does the
scoring; the tokenizer is ours (:func:`qa._text.terms`) so that the keyword
index and the extractive answerer agree on what a term is.
"""

from __future__ import annotations

import math
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import bm25s
import numpy as np

from qa._models import indexed_text
from qa._text import terms

_CACHE_VERSION = 1


@dataclass(frozen=True)
class ChunkRef:
    chunk_id: str
    article_id: str
    paragraph_numbers: tuple[int, ...]


def parse_paragraph_numbers(value: str) -> tuple[int, ...]:
    return tuple(int(n) for n in value.split(",") if n)


class KeywordIndex:
    def __init__(self, generation: str, refs: list[ChunkRef], bm25: bm25s.BM25 | None,
                 document_frequency: dict[str, int]) -> None:
        self.generation = generation
        self.refs = refs
        self._bm25 = bm25
        self._df = document_frequency
        self._position = {ref.chunk_id: i for i, ref in enumerate(refs)}

    @classmethod
    def build(cls, generation: str, chunks: Iterable[tuple[str, str, dict]]) -> "KeywordIndex":
        refs: list[ChunkRef] = []
        corpus: list[list[str]] = []
        df: Counter[str] = Counter()
        for chunk_id, text, metadata in chunks:
            refs.append(ChunkRef(chunk_id, metadata["article_id"],
                                 parse_paragraph_numbers(metadata["paragraphs"])))
            tokens = terms(indexed_text(metadata.get("context", ""), text))
            corpus.append(tokens)
            df.update(set(tokens))
        bm25 = None
        if corpus:
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        return cls(generation, refs, bm25, dict(df))

    def __len__(self) -> int:
        return len(self.refs)

    def idf(self, term: str) -> float:
        n = max(len(self.refs), 1)
        df = self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(self, query_terms: list[str], n: int) -> list[tuple[ChunkRef, float]]:
        known = [t for t in query_terms if t in self._df]
        if self._bm25 is None or not known or n <= 0:
            return []
        scores = self._bm25.get_scores(known)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top])]
        return [(self.refs[i], float(scores[i])) for i in top if scores[i] > 0]

    # -- cache -------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("keyword-*.pkl"):
            old.unlink(missing_ok=True)
        target = folder / f"keyword-{self.generation}.pkl"
        partial = target.with_suffix(".partial")
        with partial.open("wb") as handle:
            pickle.dump((_CACHE_VERSION, self.refs, self._bm25, self._df), handle,
                        protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(target)  # atomic: a reader sees the whole file or none

    @classmethod
    def load(cls, folder: Path, generation: str) -> "KeywordIndex | None":
        path = folder / f"keyword-{generation}.pkl"
        try:
            with path.open("rb") as handle:
                version, refs, bm25, df = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, AttributeError):
            return None
        if version != _CACHE_VERSION:
            return None
        return cls(generation, refs, bm25, df)
