"""One schemathesis run over every operation of a live server's /openapi.json, shared by the
API tests: schema-valid and schema-violating requests per operation (derandomized, so every
run sends the same cases), every failure collected, the count written as a test artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from conftest import REPO

ARTIFACTS = REPO / "test-artifacts" / "api"
SPEC_CHECKS: list[Callable] = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    response_headers_conformance, negative_data_rejection,
]


def fuzz_against_spec(base_url: str, examples: int, artifact: str, checks: Sequence[Callable] = SPEC_CHECKS,
                      headers: dict[str, str] | None = None) -> tuple[int, list[str], list[str]]:
    """(cases run, the operations' labels, failures); the count goes to test-artifacts/api/ARTIFACT."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    cases_run = 0
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                nonlocal cases_run
                cases_run += 1
                try:
                    case.call_and_validate(headers=headers, checks=list(checks), timeout=60)
                except (AssertionError, BaseExceptionGroup) as failure:
                    failures.append(f"{operation.label} ({mode.value}): {failure}"[:2000])

            try:
                check()
            except Unsatisfiable:
                pass  # an operation without inputs has no invalid request to make
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / artifact).write_text(
        f"{cases_run} cases over {len(operations)} operations, {len(failures)} failures\n", encoding="utf-8")
    return cases_run, [op.label for op in operations], failures
