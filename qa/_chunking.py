"""Articles → :class:`~qa._models.Chunk` s that follow paragraph boundaries.

A chunk is normally one paragraph. A paragraph longer than ``max_words`` is
split at sentence boundaries (each piece still cites its paragraph); a
paragraph shorter than ``min_words`` is merged with the next paragraph of the
same section, so a one-line byline or quote is findable with its context.
Every chunk carries the article title and section as context, because a
paragraph such as "He said it would pay $2bn." is unfindable without them.
"""

from __future__ import annotations

from qa._models import Article, Chunk, Paragraph
from qa._text import sentence_spans, word_count


def _context(article: Article, paragraph: Paragraph) -> str:
    parts = [article.title]
    if paragraph.section and paragraph.section != article.title:
        parts.append(paragraph.section)
    return " — ".join(p for p in parts if p)


def _split_long(text: str, max_words: int) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        if current and word_count(" ".join(current)) + word_count(sentence) > max_words:
            pieces.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_article(article: Article, max_words: int = 180, min_words: int = 6) -> list[Chunk]:
    groups: list[list[Paragraph]] = []
    pending: list[Paragraph] = []
    for paragraph in article.paragraphs:
        pending.append(paragraph)
        if word_count(paragraph.text) >= min_words:
            groups.append(pending)
            pending = []
    if pending:
        if groups and groups[-1][-1].section == pending[0].section:
            groups[-1].extend(pending)
        else:
            groups.append(pending)

    chunks: list[Chunk] = []
    for group in groups:
        numbers = tuple(p.number for p in group)
        text = "\n".join(p.text for p in group)
        pieces = [text] if len(group) > 1 or word_count(text) <= max_words else _split_long(text, max_words)
        for piece in pieces:
            chunks.append(
                Chunk(
                    chunk_id=f"{article.article_id}:{article.content_hash[:12]}:{len(chunks)}",
                    article_id=article.article_id,
                    paragraph_numbers=numbers,
                    text=piece,
                    context=_context(article, group[0]),
                )
            )
    return chunks
