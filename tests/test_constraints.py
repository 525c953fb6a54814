"""The constraint check: years, figures and names of the question that the article must mention.

Paragraphs and questions are written for these tests (issue 12's cases, in other words)."""

from __future__ import annotations

import dataclasses

import pytest

from qa.reader import ABSTENTION, answer_extractively
from qa._condense import condense
from qa._config import AnswerSettings
from qa.reader import ArticleFacts, missing_constraints, not_mentioned_message, question_constraints
from qa._models import ArticleRecord, AskResponse, ChatTurn, Paragraph
from qa._retrieval import Candidate


def _constraints(question: str, earlier: str = "") -> list[tuple[str, str]]:
    return [(c.kind, c.text) for c in question_constraints(question, earlier)]


def _missing(question: str, article_text: str, earlier: str = "") -> list[str]:
    facts = ArticleFacts.of_text(article_text)
    return [c.text for c in missing_constraints(question_constraints(question, earlier), facts)]


# --- what the question insists on -------------------------------------------------------

def test_years_figures_and_names_are_read_from_the_question() -> None:
    assert _constraints("What was Northwind Media's revenue in 2007?") == [
        ("year", "2007"), ("name", "Northwind Media")]
    assert _constraints("Did the harbour trust pay $25.4bn or 4,500,000 euros?") == [
        ("number", "25.4bn"), ("number", "4,500,000")]
    assert _constraints("How many ferries does Quayside Lines run?") == [("name", "Quayside Lines")]


def test_words_that_are_capitalised_only_by_position_or_are_not_figures_are_not_constraints() -> None:
    assert _constraints("Who opened the harbour?") == []
    assert _constraints("When did the 19th century harbour close in the 1990s?") == []
    assert _constraints("Which team won, and what did the mayor say?") == []
    assert _constraints("<script>alert(1)</script> which country deployed the missiles?") == []
    assert [text for kind, text in _constraints("What does Article 50(1) say?") if kind == "number"] == ["50"]


# --- whether the article mentions them --------------------------------------------------

ARTICLE_2004 = (
    "Northwind Media profits rise\n"
    "Northwind Media's revenue rose to $42.1bn in 2004, the company said.\n"
    "The unions represent 4.5m public service workers; membership rose 20 per cent."
)


@pytest.mark.parametrize("question", [
    "What was Northwind Media's revenue in 2004?",
    "Do the unions represent 4.5 million workers?",
    "Do the unions represent 4,500,000 workers?",
    "Do the unions represent 4.5m workers?",
    "Did revenue reach 42.1 billion dollars?",
    "Did membership rise 20%?",
])
def test_a_constraint_the_article_meets_in_any_wording_is_not_missing(question: str) -> None:
    assert _missing(question, ARTICLE_2004) == []


@pytest.mark.parametrize("question, missing", [
    ("What was Northwind Media's revenue in 2007?", ["2007"]),
    ("Do the unions represent 4.6 million workers?", ["4.6 million"]),
    ("What was Eastgate Press's revenue in 2004?", ["Eastgate Press"]),
    ("What did Eastgate say about 2012?", ["2012", "Eastgate"]),
])
def test_a_constraint_the_article_does_not_meet_is_missing(question: str, missing: list[str]) -> None:
    assert _missing(question, ARTICLE_2004) == missing


def test_spelled_out_figures_in_the_article_meet_numerals_in_the_question() -> None:
    assert _missing("Did two million people visit?", "Two million people visited the harbour.") == []
    assert _missing("Did 2 million people visit?", "Two million people visited the harbour.") == []


def test_a_follow_up_carries_the_earlier_questions_constraints() -> None:
    earlier = "What was Northwind Media's revenue in 2007?"
    assert _missing("And its profit?", ARTICLE_2004, earlier) == ["2007"]
    # A follow-up naming its own year replaces the earlier one.
    assert _missing("And in 2004?", ARTICLE_2004, earlier) == []
    assert condense("And its profit?", [ChatTurn(role="user", content=earlier)]).earlier_question == earlier
    assert condense("What was Northwind Media's revenue?", [ChatTurn(role="user", content=earlier)]
                    ).earlier_question == ""


def test_the_message_names_what_is_not_covered() -> None:
    constraints = question_constraints("What did Eastgate say about 2012?")
    assert not_mentioned_message(constraints[:1]) == "The indexed articles don't mention 2012."
    assert not_mentioned_message(constraints) == "The indexed articles don't mention 2012 or Eastgate."


# --- the answer stage ---------------------------------------------------------------------

class _FlatIdf:
    """Every term weighs the same: the answerer's choice then follows the words alone."""

    def idf(self, term: str) -> float:
        return 1.0


def _candidate(article_id: str, title: str, paragraph_text: str, score: float = 1.0) -> Candidate:
    paragraph = Paragraph(1, 0, len(paragraph_text), paragraph_text)
    record = ArticleRecord(article_id, f"{article_id}.txt", f"/news/{article_id}.txt", "/news", title,
                           "hash", "txt", 1, (paragraph,), "2026-01-01T00:00:00Z")
    return Candidate(record, paragraph, score=score, dense=0.8)


REVENUE_2004 = _candidate("a1", "Northwind Media profits rise",
                          "Northwind Media's revenue rose to $42.1bn in 2004, the company said.")
REVENUE_2007 = _candidate("a2", "Northwind Media outlook",
                          "Analysts expect Northwind Media's revenue to pass $50bn in 2007.", score=0.9)


def _ask(question: str, candidates: list[Candidate], history: list[ChatTurn] | None = None,
         check: bool = True):
    return answer_extractively(condense(question, history), candidates, _FlatIdf(),
                               AnswerSettings(check_constraints=check, check_names=True))


def test_a_year_the_articles_do_not_mention_makes_the_answer_abstain_and_say_so() -> None:
    answer = _ask("What was Northwind Media's revenue in 2006?", [REVENUE_2004])
    assert answer.abstained and answer.citations == []
    assert answer.answer == "The indexed articles don't mention 2006."
    assert answer.missing == ["2006"]


def test_a_question_whose_year_is_in_the_article_is_still_answered() -> None:
    answer = _ask("What was Northwind Media's revenue in 2004?", [REVENUE_2004])
    assert not answer.abstained and answer.missing == []
    assert "$42.1bn" in answer.answer and answer.citations[0].article_id == "a1"


def test_an_article_that_mentions_the_year_answers_instead_of_the_best_worded_one() -> None:
    answer = _ask("What was Northwind Media's revenue in 2007?", [REVENUE_2004, REVENUE_2007])
    assert not answer.abstained
    assert answer.citations[0].article_id == "a2"


def test_a_figure_paraphrase_is_answered_and_a_missing_name_abstains() -> None:
    assert not _ask("Did Northwind Media's revenue rise to 42.1 billion?", [REVENUE_2004]).abstained
    answer = _ask("What was Eastgate Press's revenue in 2004?", [REVENUE_2004])
    assert answer.abstained and answer.missing == ["Eastgate Press"]


def test_names_each_mentioned_somewhere_but_never_together_are_not_called_unmentioned() -> None:
    # The best-worded article lacks Bafta, the one about the Baftas lacks Howard Hughes: saying
    # "don't mention Bafta" would deny what an indexed article says.
    biopic = _candidate("f1", "Aviator opens", "The Howard Hughes film The Aviator collected praise from critics.")
    awards = _candidate("f2", "Bafta nominations", "The Aviator leads the Bafta field with 14 nominations.", score=0.9)
    answer = _ask("How many Bafta nominations did the Howard Hughes film The Aviator collect?", [biopic, awards])
    assert answer.abstained and answer.citations == []
    # True of the best-ranked article that meets the most of them.
    assert answer.answer == "The indexed articles that mention Howard Hughes and Aviator don't mention Bafta."
    assert answer.missing == ["Bafta"]
    assert not_mentioned_message(question_constraints("Did Bafta or Eastgate win?", None)) == (
        "The indexed articles don't mention Bafta or Eastgate.")


def test_articles_that_mention_everything_but_do_not_answer_give_the_plain_abstention() -> None:
    # The best-worded article lacks 2007; the one that has it is too far off to answer. 2007 is
    # mentioned, so the abstention must not say it is not.
    regatta = _candidate("r1", "Northwind Media sails", "A regatta on the harbour drew crowds in 2007.", score=0.5)
    answer = _ask("What was Northwind Media's revenue in 2007?",
                  [REVENUE_2004, dataclasses.replace(regatta, dense=0.1)])
    assert answer.abstained and answer.answer == ABSTENTION and answer.missing == []


def test_a_follow_up_abstains_on_the_earlier_turns_year() -> None:
    history = [ChatTurn(role="user", content="What was Northwind Media's revenue in 2006?")]
    answer = _ask("And how much did its revenue rise?", [REVENUE_2004], history)
    assert answer.abstained and answer.missing == ["2006"]


def test_the_check_can_be_switched_off() -> None:
    answer = _ask("What was Northwind Media's revenue in 2006?", [REVENUE_2004], check=False)
    assert not answer.abstained


def test_a_plain_abstention_keeps_the_plain_message() -> None:
    answer = _ask("Which bird nests on the cliffs?", [REVENUE_2004])
    assert answer.abstained and answer.answer == ABSTENTION and answer.missing == []


def test_the_response_model_carries_what_was_missing() -> None:
    assert "missing" in AskResponse.model_json_schema()["properties"]
    response = AskResponse(question="q", standalone_question="q", answer="a", abstained=True,
                           citations=[], retrieved=[], missing=["2006"])
    assert response.model_dump()["missing"] == ["2006"]



@pytest.mark.parametrize("question", [
    "What did the EU decide?",            # initials of "European Union"
    "How many US presidents studied there?",  # "U.S."
    "What happened to Brazil's forests?",  # "Brazilian"
    "Who did Emma Marry?",               # a misspelt span: half of its words are there
])
def test_names_meet_acronyms_derived_words_and_half_misspelt_spans(question: str) -> None:
    article = "The European Union met. Eight U.S. presidents studied there. Brazilian forests, Emma said."
    assert _missing(question, article) == []


def test_demonyms_and_hyphenated_names_meet_the_article() -> None:
    assert _missing("Who owns the Indian harbour firm?", "The firm is based in India.") == []
    assert _constraints("Who directed the Oscar-winning film?") == [("name", "Oscar")]


def test_a_follow_up_does_not_inherit_an_earlier_figure() -> None:
    assert _missing("In which year did he retire?", "He retired in 2001, aged ninety-three.",
                    "Who died at 93?") == []


def test_names_are_checked_unless_switched_off() -> None:
    assert AnswerSettings().check_constraints and AnswerSettings().check_names
    answer = answer_extractively(condense("What was Eastgate Press's revenue in 2004?", None), [REVENUE_2004],
                                 _FlatIdf(), AnswerSettings(check_names=False))
    assert not answer.abstained
    assert question_constraints("What did Eastgate say about 2012?", names=False)[0].text == "2012"
    assert len(question_constraints("What did Eastgate say about 2012?", names=False)) == 1


@pytest.mark.parametrize("question, article", [
    ("How much worse off would families be under Liberal Democrat plans?", "The Lib Dems would cost families £630."),
    ("Which British author wrote the novel?", "It is based on a novel by UK author Diana Wynne Jones."),
    ("How many days will Ireland's squad spend away?", "The Irish squad will spend 91 days away."),
    ("When did Galor and Zeria publish?", "In 1993, Galor and Zeira showed it."),  # one swapped letter
])
def test_names_meet_the_aliases_and_misspellings_of_british_news(question: str, article: str) -> None:
    assert _missing(question, article) == []


def test_a_name_several_letters_away_is_still_missing() -> None:
    assert _missing("What did Zorba say?", "In 1993, Galor and Zeira showed it.") == ["Zorba"]


def _story(*paragraphs: str) -> Candidate:
    spans, position = [], 0
    for number, text in enumerate(paragraphs, 1):
        spans.append(Paragraph(number, position, position + len(text), text))
        position += len(text) + 2
    record = ArticleRecord("s1", "s1.txt", "/news/s1.txt", "/news", "Lewis-Francis targets gold", "hash", "txt",
                           len(spans), tuple(spans), "2026-01-01T00:00:00Z")
    return Candidate(record, spans[0], score=1.0, dense=0.8)


def test_a_year_far_from_the_answer_does_not_meet_the_question() -> None:
    story = _story("Mark Lewis-Francis ran the 100m in 10.13 seconds in Athens.",
                   "He spoke about his winter training.", "He trains with the relay squad.",
                   "He hopes to win gold at the 2005 World Championships in Helsinki.")
    question = "What time did Mark Lewis-Francis run in the 100m at the 2005 World Championships?"
    near = answer_extractively(condense(question, None), [story], _FlatIdf(), AnswerSettings())
    assert near.abstained and near.missing == ["2005"]
    anywhere = answer_extractively(condense(question, None), [story], _FlatIdf(),
                                   AnswerSettings(figures_near_answer=False))
    assert not anywhere.abstained and "10.13" in anywhere.answer
