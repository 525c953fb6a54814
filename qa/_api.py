"""The HTTP API: thin FastAPI routes over :class:`~qa._service.QAService`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from qa._config import Settings
from qa._errors import QAError
from qa._models import AskResponse, ChatTurn
from qa._service import QAService


class AskRequest(BaseModel):
    question: str
    history: list[ChatTurn] | None = None
    k: int | None = Field(default=None, ge=1, le=50)


def build_api(service: QAService, settings: Settings) -> FastAPI:
    app = FastAPI(title="News QA", version="0.1.0")

    @app.exception_handler(QAError)
    async def qa_error(_: Request, exc: QAError) -> JSONResponse:
        return JSONResponse({"error": {"type": exc.error_type, "message": exc.message}},
                            status_code=exc.http_status)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/ask", response_model=AskResponse)
    def ask(request: AskRequest) -> AskResponse:
        return service.ask(request.question, request.history, k=request.k)

    return app
