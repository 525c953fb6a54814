"""Follow-up questions → a standalone question, before retrieval.

The extractive default has no model to rewrite a question, so it does what a
reader does with "and how much did it pay?": reads it together with the
previous question. A question is treated as a follow-up when it leans on
earlier turns (pronouns, "what about", a leading "and", or very few content
words); the earlier question is then appended as context. Terms of the
current question weigh more than context terms when the answerer picks a
sentence. The LLM path may replace this with a model rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa._models import ChatTurn
from qa._text import terms, words

_ANAPHORA = {
    "it", "its", "they", "them", "their", "he", "him", "his", "she", "her", "this", "that",
    "these", "those", "there", "then", "one", "ones", "same", "such", "former", "latter",
}
_FOLLOW_UP_START = re.compile(r"^\s*(and|but|so|also|what about|how about|why|then)\b", re.I)


@dataclass(frozen=True)
class Condensed:
    question: str  # as asked
    standalone: str  # what retrieval searches for
    focus_terms: tuple[str, ...]  # terms of the question itself
    context_terms: tuple[str, ...] = ()  # terms borrowed from earlier turns
    earlier_question: str = ""  # the earlier question a follow-up leans on (its constraints carry over)


def is_follow_up(question: str) -> bool:
    question_words = set(words(question))
    return bool(
        question_words & _ANAPHORA or _FOLLOW_UP_START.match(question) or len(terms(question)) <= 2
    )


def condense(question: str, history: list[ChatTurn] | None) -> Condensed:
    question = question.strip()
    focus = tuple(terms(question))
    previous = [t.content.strip() for t in history or [] if t.role == "user" and t.content.strip()]
    if not previous or not is_follow_up(question):
        return Condensed(question, question, focus)
    context = previous[-1]
    context_terms = tuple(t for t in terms(context) if t not in focus)
    return Condensed(question, f"{question} (following: {context})", focus, context_terms, context)
