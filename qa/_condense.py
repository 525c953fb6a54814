"""Follow-up questions → a standalone question, before retrieval.

The extractive default has no model to rewrite a question, so it does what a
reader does with "and how much did it pay?": reads it together with the
previous question. A question is treated as a follow-up when it leans on
earlier turns: it opens with "and", "what about" and the like, or it has a
pronoun ("he", "its", "that") before any name of its own, or it is a few words
without a name ("how much?"). A question that names its subject first ("Who is
Kenteris?", "How much did Blackpool lose when Labour moved its conference?")
stands alone, whatever was asked before. A follow-up gets the earlier question
appended as context. Terms of the
current question weigh more than context terms when the answerer picks a
sentence. The LLM path may replace this with a model rewrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa._models import ChatTurn
from qa._text import STOPWORDS, terms, tokens

# Words that refer back. "former", "one" and "such" are left out: in news questions they are
# mostly adjectives and numerals ("the former Blackburn manager", "number one singles").
_ANAPHORA = {
    "it", "its", "they", "them", "their", "he", "him", "his", "she", "her", "this", "that",
    "these", "those", "there", "then", "ones", "same", "latter",
}
_QUESTION_OPENERS = {"name", "tell", "list", "give", "please", "explain", "describe", "did", "does", "is", "are",
                     "was", "were", "has", "have", "can", "could", "will", "would", "should"}
_FOLLOW_UP_START = re.compile(r"^\s*(and|but|so|also|what about|how about|why|then)\b", re.I)


@dataclass(frozen=True)
class Condensed:
    question: str  # as asked
    standalone: str  # what retrieval searches for
    focus_terms: tuple[str, ...]  # terms of the question itself
    context_terms: tuple[str, ...] = ()  # terms borrowed from earlier turns
    earlier_question: str = ""  # the earlier question a follow-up leans on (its constraints carry over)


def is_follow_up(question: str) -> bool:
    if _FOLLOW_UP_START.match(question):
        return True
    words = tokens(question)
    first_name = next((i for i, token in enumerate(words) if _is_name(token, first=i == 0)), None)
    if first_name is None:
        return any(w.lower() in _ANAPHORA for w in words) or len(terms(question)) <= 2
    # A pronoun after the question's own name refers to it ("… Labour moved its conference").
    return any(w.lower() in _ANAPHORA for w in words[:first_name])


def _is_name(token: str, first: bool) -> bool:
    """A capitalised word that names something: not "I", not the question's opening word
    unless that is itself no common word ("Kenteris?")."""
    if not token[:1].isupper() or token == "I":
        return False
    return not first or token.lower() not in STOPWORDS and token.lower() not in _QUESTION_OPENERS


def condense(question: str, history: list[ChatTurn] | None) -> Condensed:
    question = question.strip()
    focus = tuple(terms(question))
    previous = [t.content.strip() for t in history or [] if t.role == "user" and t.content.strip()]
    if not previous or not is_follow_up(question):
        return Condensed(question, question, focus)
    context = previous[-1]
    context_terms = tuple(t for t in terms(context) if t not in focus)
    return Condensed(question, f"{question} (following: {context})", focus, context_terms, context)
