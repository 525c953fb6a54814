"""The one exception hierarchy of ``qa``.

Every failure the product reports to a person derives from :class:`QAError`,
so the CLI, the API and the chat can map them to one clear message each::

    QAError                      base; never raised itself
    ├── ConfigError              a setting is missing or wrong (exit 2, HTTP 500 at start-up only)
    ├── InvalidQuestion          empty, blank or over-long question (exit 2, HTTP 422)
    ├── InvalidInput             any other bad request value: k, mode, history, upload (exit 2, HTTP 400)
    │   └── UploadRejected       unsupported type, oversized file, path tricks in a name (HTTP 400/413/415)
    │       └── UploadConflict   the name holds another article already, and the client did not
    │                            ask to rename or replace (HTTP 409)
    ├── DocumentNotFound         no indexed article has that id (exit 3, HTTP 404)
    ├── IndexError_              the index cannot be used
    │   ├── IndexEmpty           nothing is indexed yet (HTTP 409)
    │   ├── IndexCorrupt         the index folder cannot be read; rebuild with ``qa ingest --rebuild`` (HTTP 503)
    │   ├── IndexWriteError      the index cannot be written (disk full, read-only); the previous index still answers (HTTP 507)
    │   ├── IndexModelMismatch   the index holds vectors of another embedding model; rebuild it (exit 2, HTTP 409)
    │   ├── IndexBusy            another process is writing to the embedded index; try again (HTTP 503)
    │   └── StoreUnavailable     the vector store cannot be reached or written (HTTP 503)
    ├── EmbeddingError           the embedding model cannot be loaded or run (HTTP 503)
    ├── LLMError                 the configured LLM failed; the answer path falls back to extractive
    ├── Unauthorized             an API request without the right ``Authorization: Bearer`` key (HTTP 401)
    └── NotReady                 the server is still loading the model and the index (HTTP 503)

Each class carries ``http_status`` and ``exit_code`` so the two front ends
need no table of their own, and ``error_type``: the short name the API puts in
``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations


class QAError(Exception):
    """Base of every error ``qa`` reports; the message is meant for a person."""

    http_status = 500
    exit_code = 1
    error_type = "qa_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(QAError):
    exit_code = 2
    error_type = "config_error"


class InvalidQuestion(QAError):
    http_status = 422
    exit_code = 2
    error_type = "invalid_question"


class InvalidInput(QAError):
    http_status = 400
    exit_code = 2
    error_type = "invalid_input"


class UploadRejected(InvalidInput):
    error_type = "upload_rejected"

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class UploadConflict(UploadRejected):
    error_type = "upload_conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message, http_status=409)


class DocumentNotFound(QAError):
    http_status = 404
    exit_code = 3
    error_type = "document_not_found"


class IndexError_(QAError):
    http_status = 503
    exit_code = 4
    error_type = "index_error"


class IndexEmpty(IndexError_):
    http_status = 409
    error_type = "index_empty"


class IndexCorrupt(IndexError_):
    error_type = "index_corrupt"


class IndexWriteError(IndexError_):
    http_status = 507
    error_type = "index_write_error"

    @classmethod
    def in_folder(cls, folder: object, problem: str) -> "IndexWriteError":
        return cls(f"cannot write to the index folder {folder} ({problem}); free disk space or make it "
                   "writable, then run the same command again. The index as it was before still answers questions.")


class IndexModelMismatch(IndexError_):
    http_status = 409
    exit_code = 2
    error_type = "index_model_mismatch"


class IndexBusy(IndexError_):
    error_type = "index_busy"
    http_headers = {"Retry-After": "5"}


class StoreUnavailable(IndexError_):
    error_type = "store_unavailable"


class EmbeddingError(QAError):
    http_status = 503
    exit_code = 5
    error_type = "embedding_error"


class LLMError(QAError):
    http_status = 502
    exit_code = 6
    error_type = "llm_error"


class Unauthorized(QAError):
    http_status = 401
    exit_code = 2
    error_type = "unauthorized"
    # RFC 9110: a 401 names the scheme the client should use.
    http_headers = {"WWW-Authenticate": "Bearer"}


class NotReady(QAError):
    http_status = 503
    exit_code = 4
    error_type = "not_ready"
