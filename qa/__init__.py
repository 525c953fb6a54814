"""qa: question answering over news articles, citing the exact paragraph behind every claim.

The public surface is re-exported here; the modules behind it are private
(``qa._articles``, ``qa._store``, ...), one pipeline stage each:
files → articles → chunks → index → retrieval → cited answer.
"""

from qa._articles import html_to_text, parse_file, parse_text, source_text
from qa._chunking import chunk_article
from qa._config import Settings, load_settings
from qa._errors import (
    ConfigError, DocumentNotFound, EmbeddingError, IndexCorrupt, IndexEmpty, IndexError_, IndexWriteError,
    InvalidInput, InvalidQuestion, LLMError, NotReady, QAError, StoreUnavailable, Unauthorized,
    UploadConflict, UploadRejected,
)
from qa._models import (
    Article, ArticleRecord, AskResponse, ChatTurn, Chunk, Citation, IngestReport, Paragraph,
    RetrievedParagraph, SourceParagraph,
)
from qa._service import ABSTENTION, AnswerDelta, AnswerDone, QAService
from qa._uploads import UploadedFile, safe_upload_name

__all__ = [
    "ABSTENTION", "AnswerDelta", "AnswerDone", "Article", "ArticleRecord", "AskResponse", "ChatTurn", "Chunk", "Citation",
    "ConfigError", "DocumentNotFound", "EmbeddingError", "IndexCorrupt", "IndexEmpty", "IndexError_",
    "IndexWriteError", "IngestReport", "InvalidInput", "InvalidQuestion", "LLMError", "NotReady", "Paragraph", "QAError",
    "QAService", "RetrievedParagraph", "Settings", "SourceParagraph", "StoreUnavailable", "Unauthorized",
    "UploadConflict", "UploadRejected", "UploadedFile",
    "chunk_article", "html_to_text", "load_settings", "parse_file", "parse_text", "safe_upload_name", "source_text",
]
