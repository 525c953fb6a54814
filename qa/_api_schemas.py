"""What the HTTP API accepts and returns; FastAPI publishes these as ``/openapi.json``.

The answer object itself is :class:`~qa._models.AskResponse`, shared with ``qa ask --json``.
The ``chat.completion`` shapes follow OpenAI's, so the official ``openai`` client
parses them; the bot's citations ride along in extra fields OpenAI clients keep.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, StrictBool, StrictInt, field_validator,
    model_serializer,
)

from qa._models import ArticleRecord, ChatTurn, Citation, IngestReport, RetrievedParagraph, UnsupportedSentence
from qa._service import MAX_K
from qa._text import has_lone_surrogate
from qa._uploads import UploadedFile

# Every mode the bot knows; a server without an LLM configured answers "llm" with a 400
# that names the modes it does offer (QAService.answer_modes).
AnswerMode = Literal["extractive", "llm", "judged"]


def _encodable(text: str) -> str:
    if has_lone_surrogate(text):
        raise ValueError("text must be valid Unicode (it contains an unpaired surrogate)")
    return text


# -- errors --------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    type: str = Field(description="short machine-readable kind, e.g. invalid_question, unauthorized")
    message: str = Field(description="what went wrong, for a person")


class ErrorBody(BaseModel):
    """The one shape of every error the API returns."""

    error: ErrorDetail


# -- asking --------------------------------------------------------------------------


class HistoryTurn(ChatTurn):
    @field_validator("content")
    @classmethod
    def _valid_unicode(cls, content: str) -> str:
        return _encodable(content)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="the question; blank or longer than the server's limit is refused",
                          examples=["How many anti-ballistic missiles will encompass Russia?"])
    history: list[HistoryTurn] | None = Field(
        default=None, description="earlier turns, oldest first, for a follow-up question")
    # Strict: 1.0 or 0 are not "k" or "stream"; what the schema says is what is accepted.
    k: StrictInt | None = Field(default=None, ge=1, le=MAX_K, description="paragraphs read for the answer")
    mode: AnswerMode | None = Field(default=None, description="extractive, or llm or judged when the server has "
                                    "an LLM configured; by default the server's first mode (GET /v1/models)")
    stream: StrictBool = Field(default=False, description="answer as Server-Sent Events, like /v1/ask/stream")

    @field_validator("question")
    @classmethod
    def _valid_unicode(cls, question: str) -> str:
        return _encodable(question)


# -- documents -----------------------------------------------------------------------


class ParagraphOut(BaseModel):
    number: int = Field(description="1-based paragraph number, as cited")
    start: int = Field(description="start of the paragraph's span in the article's source text")
    end: int = Field(description="end (exclusive) of the span")
    text: str
    section: str = Field(description="the heading the paragraph sits under; empty before any heading")


class DocumentSummary(BaseModel):
    id: str = Field(description="the article id used in citations and in /v1/documents/{id}")
    doc: str = Field(description="file path relative to the ingested folder")
    title: str
    kind: str = Field(description="txt, md or html")
    paragraph_count: int
    chunk_count: int
    content_hash: str = Field(description="sha256 of the file's bytes")
    ingested_at: str = Field(description="ISO 8601, UTC")

    @classmethod
    def of(cls, record: ArticleRecord) -> "DocumentSummary":
        return cls(id=record.article_id, doc=record.doc, title=record.title, kind=record.kind,
                   paragraph_count=len(record.paragraphs), chunk_count=record.chunk_count,
                   content_hash=record.content_hash, ingested_at=record.ingested_at)


class DocumentDetail(DocumentSummary):
    paragraphs: list[ParagraphOut]

    @classmethod
    def of(cls, record: ArticleRecord) -> "DocumentDetail":
        paragraphs = [ParagraphOut(number=p.number, start=p.start, end=p.end, text=p.text,
                                   section=p.section) for p in record.paragraphs]
        return cls(**DocumentSummary.of(record).model_dump(), paragraphs=paragraphs)


class DocumentList(BaseModel):
    count: int
    documents: list[DocumentSummary]


class SkippedFile(BaseModel):
    file: str
    reason: str


class FileWarning(BaseModel):
    file: str
    warning: str


class IngestReportOut(BaseModel):
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    removed: list[str]
    skipped: list[SkippedFile]
    warnings: list[FileWarning]
    chunks_embedded: int
    paragraphs_indexed: int
    seconds: float

    @classmethod
    def merged(cls, reports: list[IngestReport]) -> "IngestReportOut":
        total = IngestReport()
        for report in reports:
            for name in ("added", "updated", "unchanged", "removed", "skipped", "warnings"):
                getattr(total, name).extend(getattr(report, name))
            total.chunks_embedded += report.chunks_embedded
            total.paragraphs_indexed += report.paragraphs_indexed
            total.seconds += report.seconds
        return cls.model_validate(total.as_dict())


class UploadedFileOut(BaseModel):
    name: str = Field(description="the file name as it was sent")
    saved_as: str = Field(description="its name in the upload folder (the article's `doc`); empty when it "
                          "was not kept. Differs from `name` when the name was sanitised, shortened or, "
                          "with on_conflict=rename, taken by another article")
    status: Literal["added", "updated", "unchanged", "skipped"]
    id: str | None = Field(description="the id of the article it became; null when skipped")
    note: str = Field(description="why it was skipped, or that it was saved under another name than "
                      "asked; empty otherwise")

    @classmethod
    def of(cls, outcome: UploadedFile) -> "UploadedFileOut":
        return cls(name=outcome.name, saved_as=outcome.saved_as, status=outcome.status,
                   id=outcome.article_id, note=outcome.note)


class UploadResponse(BaseModel):
    files: list[UploadedFileOut] = Field(description="what became of each uploaded file, in the order sent")
    documents: list[DocumentSummary] = Field(description="the articles now indexed from the uploaded files")
    report: IngestReportOut


class DeleteResponse(BaseModel):
    deleted: DocumentSummary


# -- OpenAI-compatible chat ----------------------------------------------------------


class ContentPart(BaseModel):
    type: str = Field(description="only text parts are read; others are ignored")
    text: str | None = None

    # Checked here, not when the text is read, so a bad part is a 422 like any other invalid field.
    @field_validator("type", "text")
    @classmethod
    def _valid_unicode(cls, text: str | None) -> str | None:
        return None if text is None else _encodable(text)


class ChatMessageIn(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    @field_validator("content", "name")
    @classmethod
    def _valid_unicode(cls, content: object) -> object:
        return _encodable(content) if isinstance(content, str) else content

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body; parameters the bot has no use for (temperature, ...) are ignored."""

    model: str = Field(description="one of the ids GET /v1/models lists")
    messages: list[ChatMessageIn] = Field(min_length=1, description="the last one is the question")
    stream: StrictBool = False
    k: StrictInt | None = Field(default=None, ge=1, le=MAX_K, description="paragraphs read for the answer")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = Field(description="the answer, with its [n] citation markers")


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class CitedAnswerFields(BaseModel):
    """What a chat completion adds to OpenAI's fields: the sources behind the [n] markers."""

    citations: list[Citation] = Field(description="citation n backs the marker [n] in the answer")
    abstained: bool = Field(description="true when the articles do not answer the question")
    related: list[RetrievedParagraph] = Field(description="closest paragraphs when it abstained")
    unsupported: list[UnsupportedSentence] = Field(
        default_factory=list, description="sentences of a generated answer its citations do not support")
    notice: str | None = Field(default=None, description="why the extractive answer replaced the LLM's")


class ChatCompletion(CitedAnswerFields):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None

    @model_serializer(mode="wrap")
    def _finish_reason_always(self, serialize: SerializerFunctionWrapHandler) -> dict:
        # The chunk is sent without its empty fields, but OpenAI's own streams carry
        # "finish_reason": null on every chunk before the last, and clients test for it.
        return {**serialize(self), "finish_reason": self.finish_reason}


class ChatCompletionChunk(BaseModel):
    """One ``data:`` line of a streamed completion; the last one (finish_reason "stop")
    also carries ``citations``, ``abstained`` and ``related``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    citations: list[Citation] | None = None
    abstained: bool | None = None
    related: list[RetrievedParagraph] | None = None
    unsupported: list[UnsupportedSentence] | None = None
    notice: str | None = None
    answer: str | None = Field(default=None, description="the whole final answer; differs from the "
                               "streamed text only when a failing LLM was replaced mid-stream")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qa"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- health --------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    documents: int = Field(description="articles in the index")
