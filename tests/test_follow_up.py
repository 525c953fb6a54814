"""Which questions borrow the earlier turn: those that lean on it, not those that name their own subject."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import QAService
from qa._condense import condense, is_follow_up
from qa._models import ChatTurn
from tests.conftest import make_settings

PATENTS = """MEPs back software patent rules

The European Parliament voted 393 to 124 to send the software patent directive back to the Commission.
"""

KENTERIS = """Kenteris cleared of doping charge

Kostas Kenteris, the Greek sprinter who won Olympic gold in Sydney, has been cleared by his federation.
"""


@pytest.mark.parametrize("question", [
    "How much?", "And when?", "What about Microsoft?", "How much was that deal worth?",
    "On what date was she abducted?", "In what year did he leave Bullfrog to found that studio?",
    "How much did it earn on New Year's Eve?",
])
def test_questions_that_lean_on_the_earlier_turn_are_follow_ups(question: str) -> None:
    assert is_follow_up(question)


@pytest.mark.parametrize("question", [
    "Who is Kenteris?", "Kenteris?",
    "How much hotel income did Blackpool lose because Labour moved its 2006 conference to Manchester?",
    "Which club is the former Blackburn manager Roy Hodgson now coaching?",
    "How many number one singles did Westlife have?",
])
def test_questions_that_name_their_own_subject_stand_alone(question: str) -> None:
    assert not is_follow_up(question)
    history = [ChatTurn(role="user", content="How did the European Parliament vote on software patents?")]
    assert condense(question, history).standalone == question


def test_a_short_question_about_a_new_name_is_answered_from_its_own_article(tmp_path: Path) -> None:
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "patents.txt").write_text(PATENTS, encoding="utf-8")
    (articles / "kenteris.txt").write_text(KENTERIS, encoding="utf-8")
    service = QAService(make_settings(tmp_path))
    service.ingest([articles])
    first = service.ask("How did the European Parliament vote on the software patent directive?")
    assert first.citations[0].doc == "patents.txt"
    turns = [ChatTurn(role="user", content=first.question), ChatTurn(role="assistant", content=first.answer)]
    response = service.ask("Who is Kenteris?", turns)
    assert response.standalone_question == "Who is Kenteris?"
    assert response.citations and {c.doc for c in response.citations} == {"kenteris.txt"}
