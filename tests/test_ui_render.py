"""The chat's Python side without a browser: what it renders and how it reports failures,
over real services (an empty index, the seed index)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ui
from conftest import SEED_FILE, make_settings
from qa import QAService

HOSTILE = "<script>window.__xss=1</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) \" onmouseover=\""


def test_index_empty_is_a_readable_message_in_the_chat(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    chat = ui.ChatUI(QAService(settings), settings)

    *streamed, (html, entries, question_box) = chat.respond("Who approved the budget?", [], 5, "extractive")

    assert 'data-state="pending"' in streamed[0][0]
    assert entries[-1].state == "error"
    assert 'role="alert"' in html and "Nothing is indexed yet" in html
    assert "Traceback" not in html
    assert question_box == "Who approved the budget?"  # not answered, so it stays to be asked again


def test_conversation_memory_reaches_the_service(seeded_service: QAService) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)
    *_, (_, first, _) = chat.respond("How many anti-ballistic missiles will encompass Russia?", [], 5, "extractive")

    *_, (html, entries, _) = chat.respond("Where have they already been placed?", first, 5, "extractive")

    follow_up = entries[-1]
    assert len(entries) == 2 and follow_up.state == "done"
    assert "following: How many anti-ballistic missiles" in follow_up.standalone_question
    assert [c.label for c in follow_up.citations] == ["[1]"]
    assert follow_up.citations[0].doc == SEED_FILE.name
    assert html.count('class="turn"') == 2


def test_untrusted_text_is_escaped_everywhere_it_is_rendered() -> None:
    view = ui.SourceView(key="c1", label="[1]", title=HOSTILE, doc=HOSTILE, paragraph=2, paragraph_total=3,
                         section=HOSTILE, context=((1, HOSTILE), (2, HOSTILE + " cited")), quotes=((0, 8),))
    entry = ui.ChatEntry(question=HOSTILE, state="done", answer=f"{HOSTILE} [1] [7]", mode="extractive",
                         citations=(view,))

    page = ui.render_conversation([entry])

    for raw in ("<script", "<img", 'href="javascript', '" onmouseover="'):
        assert raw not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count('data-citation="1"') == 1
    assert '<span class="cite-pending">[7]</span>' in page  # a marker without a citation is not a link
    assert "<mark>&lt;script&gt;</mark>" in page


def test_streaming_answer_shows_markers_as_plain_text_until_citations_arrive() -> None:
    view = ui.SourceView(key="c1", label="[1]", title="T", doc="a.txt", paragraph=1, paragraph_total=1,
                         section="", context=((1, "text"),))

    streaming = ui.render_answer_text("Claim. [1]", (view,), clickable=False)
    done = ui.render_answer_text("Claim. [1]", (view,), clickable=True)

    assert "button" not in streaming and 'data-citation="1"' in done


# With an LLM configured its mode comes first: the one the chat starts in.
@pytest.mark.parametrize("backend, modes", [("extractive", ["extractive"]),
                                            ("openai", ["llm", "judged", "extractive"])])
def test_llm_mode_is_offered_only_when_an_llm_is_configured(tmp_path: Path, backend: str, modes: list[str]) -> None:
    settings = make_settings(tmp_path, llm={"backend": backend})
    chat = ui.ChatUI(QAService(settings), settings)

    assert [value for _, value in chat.answer_modes()] == modes


def test_unsupported_sentences_are_marked_and_still_escaped() -> None:
    view = ui.SourceView(key="c1", label="[1]", title="T", doc="a.txt", paragraph=1, paragraph_total=1,
                         section="", context=((1, "text"),))
    answer = "Supported claim [1]. <b>Invented</b> claim [1]."
    start = answer.index("<b>")

    html = ui.render_checked_answer(answer, (view,), True, ((start, len(answer)),))

    marked = html.split('<span class="unsupported"', 1)[1]
    assert "Supported claim" not in marked and "&lt;b&gt;Invented&lt;/b&gt; claim" in marked
    assert "<b>" not in html and html.count('data-citation="1"') == 2


def test_library_lists_titles_as_text_with_counts(seeded_service: QAService) -> None:
    records = seeded_service.documents()

    table = ui.render_library(records)

    assert table.count("<tr data-article-id=") == 1
    assert f'<td class="col-doc">{SEED_FILE.name}</td><td class="col-count">6</td>' in table
    assert "UTC" in table


TWO_SENTENCES = "How many anti-ballistic missiles will encompass Russia and where have shields already been placed?"


def test_every_sentence_a_citation_quotes_is_marked_in_its_paragraph(seeded_service: QAService) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)

    *_, (html, entries, _) = chat.respond(TWO_SENTENCES, [], 5, "extractive")

    (entry,) = entries
    assert entry.answer.count("[1]") == 2 and [c.label for c in entry.citations] == ["[1]"]
    (view,) = entry.citations
    cited = dict(view.context)[view.paragraph]
    assert [cited[begin:end] for begin, end in view.quotes] == [
        "As a response to the increasing threat, the Defence ministry of Russia has earlier stated that around "
        "four hundred anti-ballistic missiles will encompass Russia, creating an anti-missile shield.",
        "Such anti-missile shields have already been placed in the US in California and Alaska.",
    ]
    detail = ui.render_source_detail(view)
    assert detail.count("<mark>") == 2
    assert ("<mark>Such anti-missile shields have already been placed in the US in California and Alaska.</mark>"
            in detail)


def test_quoted_spans_are_merged_per_paragraph_and_stay_escaped() -> None:
    text = "<b>One</b> claim. A second <i>claim</i>. Unquoted."
    answer = "<b>One</b> claim. [1] …A second <i>claim</i>. [1] [2] Elsewhere. [2]"

    spans = ui.quoted_spans(answer, "[1]", text, (0, 5))  # the citation's own span overlaps the first claim

    assert spans == ((0, 17), (18, 40))
    assert ui.quoted_spans(answer, "[2]", text, None) == ((18, 40),)  # "claim [1] [2]": [2] backs it too
    assert ui.merged_spans([(5, 9), (0, 6), (9, 12), (40, 99)], 20) == ((0, 12),)
    html = ui.render_paragraph_text(text, spans)
    assert html == ("<mark>&lt;b&gt;One&lt;/b&gt; claim.</mark> <mark>A second &lt;i&gt;claim&lt;/i&gt;.</mark>"
                    " Unquoted.")


def test_a_too_long_question_states_its_length_and_the_limit_and_stays_in_the_box(seeded_service: QAService) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)
    limit = seeded_service.settings.answer.max_question_chars
    typed = "Who condemned THAAD? " + "x" * (limit + 979)

    (html, entries, question_box), = chat.respond(typed, [], 5, "extractive")  # refused at once: one update

    assert question_box == typed
    (entry,) = entries
    assert entry.state == "error"
    assert entry.error.startswith(f"The question is {len(typed):,} characters long; the limit is {limit:,} characters.")
    assert f"{len(typed) - limit:,} characters" in entry.error and "still in the box" in entry.error
    assert len(entry.question) < 400 and entry.question.startswith("Who condemned THAAD?")
    assert 'role="alert"' in html and "Could not answer." in html


@pytest.mark.parametrize("k", [25, 0, 2.5, "abc"])
def test_sources_out_of_the_sliders_range_are_refused_with_the_range(seeded_service: QAService, k: object) -> None:
    chat = ui.ChatUI(seeded_service, seeded_service.settings)

    (html, entries, question_box), = chat.respond("Who condemned THAAD?", [], k, "extractive")

    assert entries[-1].error == f"Sources to use must be a whole number from 1 to {ui.MAX_SOURCES}."
    assert question_box == "Who condemned THAAD?"


def test_the_delete_question_names_the_article_as_text(seeded_service: QAService) -> None:
    (record,) = seeded_service.documents()
    hostile = record._replace(title=HOSTILE, doc=HOSTILE)

    question = ui.render_delete_question(hostile)

    assert "<script" not in question and "<img" not in question and "&lt;script&gt;" in question
    assert "6 paragraphs)?" in question
