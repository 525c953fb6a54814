"""Chunks follow paragraph boundaries and carry the title and section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from qa import Article, Paragraph, chunk_article


def _article(*texts: str, sections: tuple[str, ...] = ()) -> Article:
    paragraphs, position = [], 0
    for number, text in enumerate(texts, 1):
        section = sections[number - 1] if sections else ""
        paragraphs.append(Paragraph(number, position, position + len(text), text, section))
        position += len(text) + 2
    return Article("a1", "doc.txt", Path("/x/doc.txt"), Path("/x"), "Budget row deepens",
                   tuple(paragraphs), "f" * 64)


def test_one_chunk_per_paragraph_with_title_and_section_context() -> None:
    article = _article("The chancellor defended the plan on Monday morning.",
                       "Critics said the numbers did not add up at all.",
                       sections=("", "Reaction"))
    chunks = chunk_article(article)
    assert [c.paragraph_numbers for c in chunks] == [(1,), (2,)]
    assert chunks[0].context == "Budget row deepens"
    assert chunks[1].context == "Budget row deepens — Reaction"
    assert chunks[1].indexed_text.startswith("Budget row deepens — Reaction\n")


def test_long_paragraph_is_split_at_sentences_and_keeps_its_number() -> None:
    sentence = "This sentence has exactly ten words in it for counting."
    article = _article(" ".join([sentence] * 30))
    chunks = chunk_article(article, max_words=50)
    assert len(chunks) == 6
    assert all(c.paragraph_numbers == (1,) for c in chunks)
    assert all(c.text.endswith("counting.") for c in chunks)
    assert len({c.chunk_id for c in chunks}) == 6


def test_tiny_paragraph_is_merged_with_the_next_one() -> None:
    article = _article("By Jane Doe", "The minister resigned late on Friday after the vote.")
    chunks = chunk_article(article, min_words=6)
    assert len(chunks) == 1
    assert chunks[0].paragraph_numbers == (1, 2)


def test_chunk_ids_change_with_the_content() -> None:
    original = _article("The minister resigned late on Friday after the vote.")
    changed = dataclasses.replace(original, content_hash="e" * 64)
    assert chunk_article(original)[0].chunk_id != chunk_article(changed)[0].chunk_id
