"""The small typed objects the pipeline stages hand to each other.

files → :class:`Article` (numbered :class:`Paragraph` s) → :class:`Chunk` s → index
→ :class:`RetrievedParagraph` s → :class:`AskResponse` (answer + :class:`Citation` s).
Dataclasses inside the pipeline, except what the manifest holds for every article (named
tuples, and :class:`PackedParagraphs`: every process holds them all); pydantic models where the
object leaves the process (CLI ``--json``, API, UI), so the API schema is the same object.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, overload

from pydantic import BaseModel, Field


class Paragraph(NamedTuple):
    """One paragraph of an article; ``text == source_text[start:end]``.

    A named tuple: a manifest record makes one each time a paragraph of it is read (see
    :class:`PackedParagraphs`), and a tuple is the cheapest object to make."""

    number: int  # 1-based, in reading order
    start: int
    end: int
    text: str
    section: str = ""  # the heading the paragraph sits under, "" before any heading


class PackedParagraphs(Sequence[Paragraph]):
    """An article's paragraphs as its manifest record keeps them: the texts in one string, the
    numbers and offsets in one ``bytes``; each :class:`Paragraph` is made when it is read.

    Every process holds the record of every indexed article, and reads them all from the manifest
    copy as it starts. At a million paragraphs the copy loads in 1.1 s into 832 MB, against 2.5 s
    and 1,218 MB with a dataclass per record and per paragraph (``bench/manifest_copy.py``): a few
    objects a record rather than a few a paragraph."""

    __slots__ = ("_texts", "_layout", "_sections")

    def __init__(self, paragraphs: Iterable[Paragraph] = ()) -> None:
        paragraphs = tuple(paragraphs)
        self._texts = "".join(p.text for p in paragraphs)
        layout = array("q")
        text_end = 0
        for paragraph in paragraphs:
            text_end += len(paragraph.text)
            layout.extend((paragraph.number, paragraph.start, paragraph.end, text_end))
        self._layout = layout.tobytes()
        sections = tuple(p.section for p in paragraphs)
        self._sections = sections if any(sections) else None

    def __len__(self) -> int:
        return len(self._layout) // _PACKED_ROW_BYTES

    def _paragraph(self, layout: memoryview, index: int) -> Paragraph:
        row = _PACKED_ROW * index
        number, start, end, text_end = layout[row : row + _PACKED_ROW]
        text_start = layout[row - 1] if index else 0
        return Paragraph(number, start, end, self._texts[text_start:text_end],
                         self._sections[index] if self._sections else "")

    @overload
    def __getitem__(self, index: int) -> Paragraph: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Paragraph, ...]: ...

    def __getitem__(self, index: int | slice) -> Paragraph | tuple[Paragraph, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError("paragraph index out of range")
        return self._paragraph(memoryview(self._layout).cast("q"), position)

    def __iter__(self) -> Iterator[Paragraph]:
        layout = memoryview(self._layout).cast("q")
        return (self._paragraph(layout, index) for index in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedParagraphs):
            return (self._texts, self._layout, self._sections) == (other._texts, other._layout, other._sections)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))  # as a tuple of the same paragraphs, which compares equal

    def __repr__(self) -> str:
        return f"PackedParagraphs({list(self)!r})"


# Each paragraph's row in PackedParagraphs._layout: number, start, end, where its text ends.
_PACKED_ROW = 4
_PACKED_ROW_BYTES = _PACKED_ROW * array("q").itemsize


@dataclass(frozen=True)
class Article:
    """A parsed file: the unit that is added, replaced or removed as a whole."""

    article_id: str  # stable key derived from the absolute path
    doc: str  # path relative to the folder given to ingest (file name for a single file)
    path: Path  # absolute path of the source file
    root: Path  # the folder (or file) that was ingested, to notice files that disappear
    title: str
    paragraphs: tuple[Paragraph, ...]
    content_hash: str  # sha256 of the file's bytes
    kind: Literal["txt", "md", "html"] = "txt"
    warnings: tuple[str, ...] = ()


def indexed_text(context: str, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its title/section context, then its text."""
    return f"{context}\n{text}" if context else text


@dataclass(frozen=True)
class Chunk:
    """What is embedded and keyword-indexed: one paragraph, a piece of a long one, or tiny ones merged."""

    chunk_id: str
    article_id: str
    paragraph_numbers: tuple[int, ...]
    text: str  # the paragraph text itself
    context: str  # title and section, prepended when embedding and keyword-indexing

    @property
    def indexed_text(self) -> str:
        return indexed_text(self.context, self.text)


def _reduce_to_tuple(named: tuple) -> tuple:
    # Unpickled by tuple.__new__, which is C, rather than by the named tuple's own __new__, a
    # Python function: 232k calls fewer when a process reads the manifest copy of 1M paragraphs.
    return tuple.__new__, (type(named), tuple(named))


class ArticleRecord(NamedTuple):
    """What the index remembers of an ingested article (the manifest entry); a named tuple, for
    the reason :class:`PackedParagraphs` gives."""

    article_id: str
    doc: str
    path: str
    root: str
    title: str
    content_hash: str
    kind: str
    chunk_count: int
    paragraphs: Sequence[Paragraph]  # PackedParagraphs, as the index reads them
    ingested_at: str  # ISO 8601, UTC

    __reduce__ = _reduce_to_tuple


@dataclass
class IngestReport:
    """The summary of one ``qa ingest`` run."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, warning)
    chunks_embedded: int = 0
    paragraphs_indexed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "warnings": [{"file": f, "warning": w} for f, w in self.warnings],
            "chunks_embedded": self.chunks_embedded,
            "paragraphs_indexed": self.paragraphs_indexed,
            "seconds": round(self.seconds, 3),
        }


class ChatTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class SourceParagraph(BaseModel):
    """A paragraph as the outside world sees it: enough to open and check it."""

    doc: str = Field(description="file path relative to the ingested folder")
    article_id: str
    title: str
    paragraph: int = Field(description="1-based paragraph number in the article")
    start: int = Field(description="start of the paragraph's character span in the source text")
    end: int = Field(description="end (exclusive) of the span")
    text: str
    section: str = ""


class RetrievedParagraph(SourceParagraph):
    score: float


class Citation(SourceParagraph):
    n: int = Field(description="the marker [n] in the answer")
    quote_start: int | None = Field(default=None, description="span of the cited sentence")
    quote_end: int | None = None


class UnsupportedSentence(BaseModel):
    """A sentence of a generated answer that the paragraphs it cites do not support."""

    text: str
    start: int = Field(description="span of the sentence in the answer text")
    end: int
    citations: list[int] = Field(description="the [n] markers the sentence carries")
    support: float = Field(description="support score against its cited paragraphs (0..1)")
    reason: Literal["no_citation", "not_supported"]


class CitationCheck(BaseModel):
    """What the citation check found in a generated answer (absent on the extractive path)."""

    sentences: int = Field(description="sentences of the generated answer")
    supported: int = Field(description="sentences with a valid citation whose paragraph supports them")
    removed_citations: int = Field(description="[n] markers removed because no source n was given")
    threshold: float = Field(description="support score a sentence needed")
    reattributed: int = Field(default=0, description="[n] markers pointed at another given source, the one "
                              "that supports every sentence citing [n] when n's own paragraph does not")
    fallback: str | None = Field(default=None, description="why the generated answer was replaced "
                                 "by the extractive one, when it was")


class JudgeVerdict(BaseModel):
    """The model's verdict on the extractive answer (mode "judged" only)."""

    probability: float = Field(description="the model's probability that the cited paragraph answers the question")
    threshold: float = Field(description="below it the answer was withdrawn and the bot abstained")


class AskResponse(BaseModel):
    """The answer object: ``qa ask --json``, ``POST /v1/ask`` and every eval line."""

    question: str
    standalone_question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    related: list[RetrievedParagraph] = Field(default_factory=list)
    retrieved: list[RetrievedParagraph]
    timings: dict[str, float] = Field(default_factory=dict, description="milliseconds per stage")
    mode: str = "extractive"
    notice: str | None = None
    unsupported: list[UnsupportedSentence] = Field(
        default_factory=list, description="sentences of a generated answer its citations do not support")
    citation_check: CitationCheck | None = None
    missing: list[str] = Field(
        default_factory=list, description="on an abstention because the articles don't mention a year, "
        "figure or name the question asks about: those parts, as written in the question")
    judge: JudgeVerdict | None = Field(default=None, description='mode "judged": the model\'s verdict on the '
                                       "extractive answer's paragraph")
    answer_type: str | None = Field(
        default=None, description="the kind of answer the question asks for, as the extractive reader read it: "
        "person_or_organisation (who), person, organisation, place, date, year, duration, money, percent, "
        "quantity (a count), amount (a count, sum or share) or work (a title: film, song, book, show); null for a "
        "description or a generated answer")
