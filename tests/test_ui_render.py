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
    assert "Traceback" not in html and question_box == ""


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
                         section=HOSTILE, context=((1, HOSTILE), (2, HOSTILE + " cited")), quote=(0, 8))
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
@pytest.mark.parametrize("backend, modes", [("extractive", ["extractive"]), ("openai", ["llm", "extractive"])])
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
