"""Settings: one TOML file (``config/default.toml``) plus ``QA_<SECTION>_<KEY>`` overrides.

The file documents every key. Secrets never come from the file: API keys
are read from the environment only, at the moment they are needed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from qa._errors import ConfigError

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "default.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexSettings(_Section):
    dir: Path = Path(".qa-index")
    default_source: Path = Path("seeds")
    upload_dir: Path = Path("uploads")
    writer_wait_s: float = 30.0

    @property
    def upload_folder(self) -> Path:
        """Where uploads are saved: ``upload_dir`` under the index folder unless it is absolute,
        so a server never writes into whatever folder it was started from."""
        return (self.dir / self.upload_dir).resolve()


class VectorStoreSettings(_Section):
    mode: Literal["embedded", "http", "cloud"] = "embedded"
    host: str = "127.0.0.1"
    port: int = 8001
    ssl: bool = False
    auth_header: str = "Authorization"
    timeout_s: float = 10
    tenant: str = "default_tenant"
    database: str = "default_database"
    collection_prefix: str = "news"


class EmbeddingSettings(_Section):
    backend: Literal["onnx", "openai"] = "onnx"
    variant: Literal["fused", "original"] = "fused"
    batch_size: int = 16
    max_tokens: int = 256
    threads: int = 0
    base_url: str = ""
    model: str = "text-embedding-3-small"


class IngestSettings(_Section):
    commit_chunks: int = 1024


class ChunkingSettings(_Section):
    max_words: int = 180
    min_words: int = 6


class RetrievalSettings(_Section):
    top_k: int = 5
    candidates: int = 30
    rrf_k: int = 60
    weight_dense: float = 2.0
    weight_dense_rank: float = 1.0
    weight_keyword_rank: float = 1.0
    weight_article_dense: float = 2.0
    weight_article_keyword: float = 4.0
    weight_paragraph_coverage: float = 2.0
    weight_sentence_coverage: float = 2.0


class AnswerSettings(_Section):
    max_sentences: int = 2
    max_words: int = 80
    abstain_threshold: float = 0.36
    max_question_chars: int = 2000
    check_constraints: bool = True
    check_names: bool = True
    answer_types: bool = True
    type_bonus: float = 0.3
    type_penalty: float = 0.2
    type_in_abstention: float = 1.0
    typed_sentences: int = 16
    neighbour_paragraphs: int = 0
    require_answer_type: bool = False
    figures_near_answer: bool = True
    meaning_weight: float = 0.15
    meaning_sentences: int = 5


class LLMSettings(_Section):
    backend: Literal["extractive", "openai", "llama_cpp", "local"] = "extractive"
    base_url: str = ""
    model: str = ""
    model_path: str = ""
    timeout_s: float = 30
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    context_window: int = 8192
    max_answer_tokens: int = 300
    temperature: float = 0.0
    threads: int = 0
    rewrite_follow_ups: bool = True
    support_threshold: float = 0.65
    judge_threshold: float = 0.45


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 5_000_000
    allowed_hosts: list[str] = []

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # QA_SERVER_ALLOWED_HOSTS comes from the environment as one string: "qa.example.org,10.0.0.5".
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class Settings(_Section):
    index: IndexSettings = IndexSettings()
    vector_store: VectorStoreSettings = VectorStoreSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    ingest: IngestSettings = IngestSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()


# Environment variables that look like QA_<SECTION>_<KEY> but are not settings.
_NOT_SETTINGS = {"QA_CONFIG", "QA_API_KEY", "QA_LLM_API_KEY", "QA_EMBEDDING_API_KEY"}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    sections = sorted(Settings.model_fields, key=len, reverse=True)
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("QA_") or name in _NOT_SETTINGS:
            continue
        rest = name[3:].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1 :]
        if key not in Settings.model_fields[section].annotation.model_fields:
            raise ConfigError(f"{name} is not a setting: [{section}] has no key {key!r}")
        overrides.setdefault(section, {})[key] = value
    return overrides


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None, **sections: Any
) -> Settings:
    """Read the TOML file, apply ``QA_*`` environment overrides, then ``sections`` (used by tests)."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("QA_CONFIG") or DEFAULT_CONFIG_FILE)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for source in (_env_overrides(environ), sections):
        for section, values in source.items():
            data.setdefault(section, {}).update(values)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({path}): {problems}") from None


def secret(*names: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The first of ``names`` set in the environment; secrets never live in files."""
    environ = os.environ if environ is None else environ
    return next((environ[n] for n in names if environ.get(n)), None)
