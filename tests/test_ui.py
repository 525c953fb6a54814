"""The chat in a real headless Chromium, against ``qa serve`` over an index of seeds/.

One server and one browser serve the whole module; each test opens its own browser context,
so conversations never leak between tests. Screenshots of each state land in
test-artifacts/ui/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from gradio_client import Client
from playwright.sync_api import Browser, Locator, Page, Request, Route, expect

from _browser import ANSWER_TIMEOUT_MS, LAPTOP, PHONE, browser, screenshot_path  # noqa: F401  (browser: a fixture)
from _browser import ChatPage as BrowserChatPage
from _live import GradioPage, GradioSession, indexed_docs, qa_server, uploaded
from conftest import SEED_FILE, SEEDS, make_settings
from qa import QAService

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_ANSWER_PHRASE = "four hundred anti-ballistic missiles will encompass Russia"
FOLLOW_UP = "Where have they already been placed?"
UNANSWERABLE = "What is the capital of France?"
UPLOAD_LIMIT = 20_000

# Every way article text could try to run script in the page; each sets window.__xss.
PAYLOAD_SCRIPT = "<script>window.__xss='script'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"window.__xss='img'\">"
PAYLOAD_LINK = "[read the minutes](javascript:window.__xss='link')"
PAYLOAD_TEMPLATE = "${window.__xss='template'} {{constructor.constructor('window.__xss=1')()}}"
PAYLOAD_ARTICLE = f"""Zorblatt Council Report {PAYLOAD_IMG}

The Zorblatt council approved a bridge budget of 42 million crowns {PAYLOAD_SCRIPT} after a long debate in the town hall.

Critics of the Zorblatt bridge posted {PAYLOAD_IMG} and {PAYLOAD_LINK} on the council forum, calling the budget reckless.

The mayor of Zorblatt said construction starts next spring {PAYLOAD_TEMPLATE} if the river authority agrees.
"""
PAYLOAD_FILE = "zorblatt-payload.txt"
PAYLOAD_QUESTION = "What budget did the Zorblatt council approve?"
# Two sentences of the seed's paragraph 6, both cited [1]: each must be marked in the panel.
TWO_SENTENCES = "How many anti-ballistic missiles will encompass Russia and where have shields already been placed?"
FIRST_SENTENCE_PHRASE = "four hundred anti-ballistic missiles will encompass Russia, creating an anti-missile shield."
SECOND_SENTENCE = "Such anti-missile shields have already been placed in the US in California and Alaska."
FIVE_TURNS = (SEED_QUESTION, FOLLOW_UP, "Who condemned the deployment of THAAD by South Korea?",
              "What does Russia fear about the Aegis system in Japan?", TWO_SENTENCES)
# A paragraph far taller than the sources panel, with the answer in its last sentence.
FILLER = ("Harbour engineers measured the silt along the eastern quay again this season, and the "
          "survey boats logged depths at every mooring from the ferry ramp to the grain terminal. ")
LONG_ARTICLE = ("Velmora Harbour Dredging Report\n\n"
                "The Velmora harbour board met in the old customs house to discuss the state of the port.\n\n"
                + FILLER * 18 + "The Velmora harbour board approved a dredging budget of 87 million florins "
                "after the survey.\n\nWork on the western channel is due to begin in the autumn.\n")
LONG_FILE = "velmora-dredging.txt"
LONG_QUESTION = "What dredging budget did the Velmora harbour board approve?"
DOOMED_FILE = "quillon-ferry.txt"
DOOMED_ARTICLE = ("Quillon Ferry Timetable\n\nThe Quillon ferry will sail every forty minutes from the "
                  "north pier starting in May.\n")

# Records every state the conversation's turns pass through, to tell a streamed answer from one
# that appeared whole.
RECORD_TURN_STATES = """
window.__turnStates = [];
new MutationObserver(() => {
  document.querySelectorAll('#conversation .turn').forEach((turn) => {
    const answer = turn.querySelector('.bubble.answer');
    const entry = turn.dataset.turn + ':' + turn.dataset.state + ':' + (answer ? answer.textContent.length : 0);
    if (!window.__turnStates.includes(entry)) window.__turnStates.push(entry);
  });
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


@pytest.fixture(scope="module")
def index_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ui")
    settings = make_settings(root)
    QAService(settings).ingest([SEEDS])
    return settings.index.dir, settings.index.upload_dir


@pytest.fixture(scope="module")
def base_url(index_dirs: tuple[Path, Path]) -> Iterator[str]:
    index_dir, upload_dir = index_dirs
    # No key or password: the chat is open, as on a developer's machine.
    env = {"QA_SERVER_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "QA_API_KEY": "", "QA_UI_PASSWORD": ""}
    with qa_server(index_dir, upload_dir, env=env, log=screenshot_path("server").with_suffix(".log")) as url:
        yield url



@pytest.fixture
def long_article(base_url: str) -> Iterator[str]:
    article_id = uploaded(base_url, LONG_FILE, LONG_ARTICLE)
    yield article_id
    httpx.delete(f"{base_url}/v1/documents/{article_id}", timeout=60)  # the other tests expect the seed alone


@pytest.fixture
def doomed_article(base_url: str) -> Iterator[str]:
    article_id = uploaded(base_url, DOOMED_FILE, DOOMED_ARTICLE)
    yield article_id
    if DOOMED_FILE in indexed_docs(base_url):
        httpx.delete(f"{base_url}/v1/documents/{article_id}", timeout=60)


# The rectangle of an element's nearest scrolling ancestor that is on screen: where it can be seen.
VISIBLE_AREA = """(node) => {
  let box = node.parentElement;
  while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
  const area = box ? box.getBoundingClientRect() : {top: 0, bottom: innerHeight, left: 0, right: innerWidth};
  return {top: Math.max(area.top, 0), bottom: Math.min(area.bottom, innerHeight),
          left: Math.max(area.left, 0), right: Math.min(area.right, innerWidth),
          scrollTop: box ? box.scrollTop : scrollY, scrollable: box ? box.scrollHeight - box.clientHeight : 0};
}"""


def assert_fully_visible(locator: Locator) -> None:
    """``locator``'s bounding box inside the window and inside its scroll container's visible part."""
    box = locator.bounding_box()
    area = locator.evaluate(VISIBLE_AREA)
    assert box is not None
    assert area["top"] - 1 <= box["y"] and box["y"] + box["height"] <= area["bottom"] + 1, (box, area)
    assert area["left"] - 1 <= box["x"] and box["x"] + box["width"] <= area["right"] + 1, (box, area)


class ChatPage(BrowserChatPage):
    """The chat with every state each turn passed through recorded (``turn_states``)."""

    def __init__(self, page: Page, base_url: str) -> None:
        super().__init__(page, base_url, init_script=RECORD_TURN_STATES)

    def turn_states(self, index: int) -> list[str]:
        return [s for s in self.page.evaluate("window.__turnStates") if s.startswith(f"{index}:")]

    def open_library(self) -> None:
        self.page.get_by_role("tab", name="Library").click()
        expect(self.page.locator("#library-table table")).to_be_visible()

    def open_chat(self) -> None:
        self.page.get_by_role("tab", name="Chat").click()
        expect(self.question_box).to_be_visible()

    def xss_flag(self) -> object:
        return self.page.evaluate("window.__xss")

    def shot(self, name: str, full_page: bool = False) -> None:
        self.page.screenshot(path=screenshot_path(name), full_page=full_page)


@pytest.fixture
def chat(browser: Browser, base_url: str) -> Iterator[ChatPage]:
    context = browser.new_context(viewport=LAPTOP)
    try:
        yield ChatPage(context.new_page(), base_url)
    finally:
        context.close()


def test_answer_streams_in_with_a_citation_that_opens_the_highlighted_paragraph(chat: ChatPage) -> None:
    expect(chat.page.locator("#app-header")).to_contain_text("1 article, 6 paragraphs indexed")
    # Example questions come from the titles of the newest articles: here the seed's.
    expect(chat.page.locator("#examples")).to_contain_text("What does “Aegis Missile Defense System")

    turn = chat.ask(SEED_QUESTION)

    states = chat.turn_states(0)
    assert any(":pending:" in s for s in states), states
    assert any(":streaming:" in s for s in states), states
    streamed_lengths = {int(s.rsplit(":", 1)[1]) for s in states if ":streaming:" in s}
    final_length = len(turn.locator(".bubble.answer").text_content())
    assert min(streamed_lengths) < final_length, "the answer appeared whole instead of streaming in"
    expect(turn.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)
    citation = turn.locator('.bubble.answer button.cite[data-citation="1"]')
    expect(citation).to_have_text("[1]")
    expect(turn.locator(".source-card")).to_have_count(1)
    expect(turn.locator(".source-card")).to_contain_text(f"{SEED_FILE.name} · ¶6")
    expect(chat.page.locator("#sources-panel .sources-empty")).to_be_visible()

    citation.click()

    cited = chat.sources.locator(".para.is-cited")
    expect(cited).to_have_count(1)
    expect(cited).to_have_attribute("data-paragraph", "6")
    expect(cited.locator("mark")).to_contain_text(SEED_ANSWER_PHRASE)
    expect(cited).to_be_in_viewport()
    expect(chat.sources.locator(".detail-title")).to_contain_text("Aegis Missile Defense System")
    expect(chat.sources.locator(".detail-doc")).to_have_text(SEED_FILE.name)
    expect(chat.sources.locator(".detail-paragraph")).to_have_text("Paragraph 6 of 6")
    # The paragraphs around the cited one give it context; they are not highlighted.
    expect(chat.sources.locator(".para")).to_have_count(3)
    expect(chat.sources.locator('.para[data-paragraph="5"]')).to_contain_text("THAAD")
    expect(chat.sources.locator('.para[data-paragraph="5"] mark')).to_have_count(0)
    expect(chat.page.locator("#sources-panel .sources-empty")).to_be_hidden()
    expect(citation).to_have_class("cite is-open")
    chat.shot("01-answer-with-open-citation")


def test_follow_up_is_read_with_the_earlier_question_and_clear_forgets_it(chat: ChatPage) -> None:
    chat.ask(SEED_QUESTION)
    follow_up = chat.ask(FOLLOW_UP)

    expect(follow_up.locator(".searched-for")).to_contain_text(f"following: {SEED_QUESTION}")
    expect(follow_up.locator(".bubble.answer")).to_contain_text("California and Alaska")
    card = follow_up.locator(".source-card").first
    card.click()
    expect(chat.sources.locator(".para.is-cited mark")).to_contain_text("California and Alaska")
    chat.shot("02-follow-up")

    chat.page.locator("#clear-button").click()
    expect(chat.turns).to_have_count(0)
    expect(chat.page.locator("#sources-panel .sources-empty")).to_be_visible()
    expect(chat.sources.locator(".para")).to_have_count(0)
    fresh = chat.ask(FOLLOW_UP)
    expect(fresh.locator(".searched-for")).to_have_count(0)


def test_unanswerable_question_abstains_and_lists_related_articles_without_markers(chat: ChatPage) -> None:
    turn = chat.ask(UNANSWERABLE)

    abstention = turn.locator(".bubble.abstention")
    expect(abstention).to_contain_text("The indexed articles don't answer this question.")
    expect(turn.locator(".bubble.answer")).to_have_count(0)
    expect(turn.locator("button.cite")).to_have_count(0)
    expect(turn.locator(".related .source-card")).to_have_count(1)  # one card per article
    expect(turn.locator(".related .source-card .card-label")).to_have_count(0)
    expect(turn.locator(".related .source-card")).to_contain_text("Aegis Missile Defense System")
    turn.locator(".related .source-card").click()
    expect(chat.sources.locator(".para.is-cited")).to_have_count(1)
    chat.shot("03-abstention")


def test_uploaded_article_with_script_payloads_is_shown_as_text_and_deleted(
        chat: ChatPage, index_dirs: tuple[Path, Path]) -> None:
    upload_dir = index_dirs[1]
    status = chat.page.locator("#library-status")
    files = chat.page.locator("#upload-files input[type=file]")
    chat.open_library()

    files.set_input_files([{"name": f"../{PAYLOAD_FILE}", "mimeType": "text/plain",
                            "buffer": PAYLOAD_ARTICLE.encode()}])

    expect(status.locator("li.ok")).to_contain_text(f"{PAYLOAD_FILE}: “Zorblatt Council Report {PAYLOAD_IMG}”",
                                                    timeout=ANSWER_TIMEOUT_MS)
    # "../" cannot leave the upload folder: the file is saved inside it under its base name.
    assert (upload_dir / PAYLOAD_FILE).read_text() == PAYLOAD_ARTICLE
    assert not (upload_dir.parent / PAYLOAD_FILE).exists()
    row = chat.page.locator("#library-table tr", has_text="Zorblatt")
    expect(row.locator(".col-title")).to_have_text(f"Zorblatt Council Report {PAYLOAD_IMG}")
    expect(row.locator(".col-count")).to_have_text("3")
    expect(chat.page.locator("#app-header")).to_contain_text("2 articles, 9 paragraphs indexed")
    chat.shot("04-library-after-upload", full_page=True)

    files.set_input_files([{"name": "too-big.txt", "mimeType": "text/plain",
                            "buffer": b"A long article.\n\n" + b"word " * UPLOAD_LIMIT}])
    # Gradio refuses the file in the browser (max_file_size) before it is sent.
    expect(chat.page.get_by_text("File(s) exceed the maximum allowed size")).to_be_visible()
    assert not (upload_dir / "too-big.txt").exists()

    chat.open_chat()
    turn = chat.ask(PAYLOAD_QUESTION)
    expect(turn.locator(".bubble.answer")).to_contain_text(f"42 million crowns {PAYLOAD_SCRIPT}")
    turn.locator('button.cite[data-citation="1"]').click()
    expect(chat.sources.locator(".para.is-cited")).to_contain_text(PAYLOAD_SCRIPT)
    expect(chat.sources.locator(".detail-title")).to_contain_text(PAYLOAD_IMG)
    expect(chat.sources.locator('.para[data-paragraph="2"]')).to_contain_text(PAYLOAD_LINK)
    expect(chat.sources.locator('.para[data-paragraph="3"]')).to_contain_text(PAYLOAD_TEMPLATE)
    hostile_question = chat.ask(f"{PAYLOAD_QUESTION} {PAYLOAD_IMG} {PAYLOAD_LINK}")
    expect(hostile_question.locator(".msg.user")).to_have_text(f"{PAYLOAD_QUESTION} {PAYLOAD_IMG} {PAYLOAD_LINK}")
    chat.shot("05-payload-shown-as-text")

    assert chat.xss_flag() is None
    assert chat.dialogs == []
    expect(chat.page.locator("img[src='x']")).to_have_count(0)
    expect(chat.page.locator("a[href^='javascript']")).to_have_count(0)
    expect(chat.page.locator("#conversation script, #sources-panel script")).to_have_count(0)

    chat.open_library()
    chat.page.locator("#library-table tr", has_text="Zorblatt").locator(".row-delete").click()
    chat.page.locator("#confirm-delete").click()
    expect(status.locator("li.ok")).to_contain_text(f"Deleted {PAYLOAD_FILE}")
    expect(chat.page.locator("#library-table tr", has_text="Zorblatt")).to_have_count(0)
    expect(chat.page.locator("#app-header")).to_contain_text("1 article, 6 paragraphs indexed")
    assert not (upload_dir / PAYLOAD_FILE).exists()
    chat.shot("06-library-after-delete", full_page=True)

    chat.open_chat()
    after_delete = chat.ask(PAYLOAD_QUESTION)
    expect(after_delete.locator(".bubble.answer, .bubble.abstention")).not_to_contain_text("Zorblatt")
    assert chat.xss_flag() is None
    assert chat.errors == []


def test_phone_width_stacks_the_sources_under_the_chat(browser: Browser, base_url: str) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        chat = ChatPage(context.new_page(), base_url)
        turn = chat.ask(SEED_QUESTION)
        turn.locator('button.cite[data-citation="1"]').tap()
        cited = chat.sources.locator(".para.is-cited")
        expect(cited).to_be_in_viewport()
        overflow = chat.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        conversation = chat.page.locator("#conversation").bounding_box()
        panel = chat.page.locator("#sources-panel").bounding_box()
        assert panel["y"] >= conversation["y"] + conversation["height"], "sources should sit below the chat"
        chat.shot("07-phone-open-citation")
    finally:
        context.close()


def test_gradio_client_gets_the_answer_with_citations(base_url: str) -> None:
    client = Client(base_url, verbose=False)

    answered = client.predict(SEED_QUESTION, api_name="/ask")
    abstained = client.predict(UNANSWERABLE, 3, api_name="/ask")

    assert "[1]" in answered["answer"]
    assert not answered["abstained"]
    citation = answered["citations"][0]
    assert (citation["n"], citation["doc"], citation["paragraph"]) == (1, SEED_FILE.name, 6)
    assert SEED_ANSWER_PHRASE in citation["text"]
    assert abstained["abstained"] and abstained["citations"] == []
    assert abstained["related"][0]["doc"] == SEED_FILE.name


def test_the_chat_follows_the_newest_answer_over_five_turns(chat: ChatPage) -> None:
    assert chat.page.viewport_size == {"width": 1366, "height": 850}

    for number, question in enumerate(FIVE_TURNS):
        answer = chat.ask(question).locator(".msg.bot")
        # Waits until the answer is wholly on screen: not clipped by the chat box, not below the window.
        expect(answer).to_be_in_viewport(ratio=0.99)
        assert_fully_visible(answer)

    area = chat.turns.last.evaluate(VISIBLE_AREA)
    assert area["scrollable"] > 300 and area["scrollTop"] > 300, "five turns should overflow the chat box"
    expect(chat.turns.first.locator(".msg.bot")).not_to_be_in_viewport()  # the oldest answer scrolled away
    chat.shot("08-newest-answer-in-view-after-five-turns")


def test_every_sentence_a_citation_quotes_is_marked_in_the_sources_panel(chat: ChatPage) -> None:
    turn = chat.ask(TWO_SENTENCES)
    citations = turn.locator('.bubble.answer button.cite[data-citation="1"]')
    expect(citations).to_have_count(2)

    citations.nth(1).click()  # the second sentence's [1]

    marks = chat.sources.locator('.para.is-cited[data-paragraph="6"] mark')
    expect(marks).to_have_count(2)
    expect(marks.nth(0)).to_contain_text(FIRST_SENTENCE_PHRASE)
    expect(marks.nth(1)).to_have_text(SECOND_SENTENCE)
    expect(marks.nth(1)).to_be_in_viewport()
    expect(chat.sources.locator(".para:not(.is-cited) mark")).to_have_count(0)
    expect(turn.locator(".source-card .card-excerpt")).to_contain_text("… Such anti-missile")  # both previewed
    chat.shot("09-both-quoted-sentences-marked")


def test_the_sources_header_stays_pinned_while_a_long_paragraph_scrolls_and_the_panel_closes(
        long_article: str, chat: ChatPage) -> None:
    turn = chat.ask(LONG_QUESTION)
    citation = turn.locator('.bubble.answer button.cite[data-citation="1"]')
    citation.click()

    header = chat.sources.locator(".detail-header")
    mark = chat.sources.locator(".para.is-cited mark")
    expect(chat.sources.locator(".detail-paragraph")).to_have_text("Paragraph 2 of 3")
    expect(chat.sources.locator(".detail-doc")).to_have_text(LONG_FILE)
    expect(mark).to_contain_text("87 million florins")
    expect(mark).to_be_in_viewport()
    # The panel opens on the marked sentence, below the header rather than under it.
    assert mark.bounding_box()["y"] >= header.bounding_box()["y"] + header.bounding_box()["height"] - 1
    assert_fully_visible(header)
    body = chat.sources.evaluate("(body) => ({height: body.clientHeight, content: body.scrollHeight})")
    assert body["content"] > body["height"] + 400, body

    for wheel, at_end in ((-20_000, "body.scrollTop === 0"),
                          (20_000, "body.scrollTop >= body.scrollHeight - body.clientHeight - 1")):
        chat.sources.hover()
        chat.page.mouse.wheel(0, wheel)
        chat.page.wait_for_function(f"() => {{ const body = document.querySelector('#sources-panel .sources-body');"
                                    f" return {at_end}; }}")
        assert_fully_visible(header)
        expect(chat.sources.locator(".detail-title")).to_be_in_viewport(ratio=0.99)
        expect(chat.sources.locator(".detail-paragraph")).to_be_in_viewport(ratio=0.99)
    # Scrolled to the end: the paragraph before the cited one has left the body, the header has not.
    expect(chat.sources.locator('.para[data-paragraph="1"]')).not_to_be_in_viewport()
    header_box = header.bounding_box()
    assert abs(header_box["y"] - chat.sources.bounding_box()["y"]) <= 2, "the header should sit at the body's top"
    chat.shot("10-pinned-header-after-scrolling")

    close = chat.page.locator("#sources-panel .sources-close")
    expect(close).to_be_visible()
    close.click()
    expect(chat.sources.locator(".source-detail")).to_have_count(0)
    expect(chat.page.locator("#sources-panel .sources-empty")).to_be_visible()
    expect(close).to_be_hidden()
    expect(citation).not_to_have_class("cite is-open")
    chat.shot("11-panel-closed")


def test_delete_asks_first_cancel_keeps_the_article_and_confirm_deletes_it(
        doomed_article: str, chat: ChatPage, base_url: str) -> None:
    status = chat.page.locator("#library-status")
    confirm_box = chat.page.locator("#delete-confirm")
    row = chat.page.locator("#library-table tr", has_text="Quillon Ferry Timetable")
    chat.open_library()
    expect(row).to_have_count(1)
    expect(confirm_box).to_be_hidden()

    def delete_from_its_row() -> None:
        row.locator(".row-delete").click()

    delete_from_its_row()
    expect(confirm_box).to_be_visible()
    expect(chat.page.locator("#delete-question")).to_contain_text(
        f"Delete {DOOMED_FILE} (“Quillon Ferry Timetable”, 1 paragraph)?")
    expect(chat.page.locator("#confirm-delete")).to_have_text("Confirm delete")
    expect(row).to_have_count(1)
    assert DOOMED_FILE in indexed_docs(base_url), "Delete alone must not delete"
    chat.shot("12-delete-asks-for-confirmation", full_page=True)

    chat.page.locator("#cancel-delete").click()
    expect(status.locator("li.ok")).to_have_text(f"✓ Kept {DOOMED_FILE}: nothing was deleted.")
    expect(confirm_box).to_be_hidden()
    expect(row).to_have_count(1)
    assert DOOMED_FILE in indexed_docs(base_url)

    delete_from_its_row()
    chat.page.locator("#confirm-delete").click()
    expect(status.locator("li.ok")).to_contain_text(f"Deleted {DOOMED_FILE}")
    expect(confirm_box).to_be_hidden()
    expect(row).to_have_count(0)
    assert DOOMED_FILE not in indexed_docs(base_url)
    assert chat.dialogs == [], "the confirmation is part of the page, not a browser dialog"
    chat.shot("13-delete-confirmed", full_page=True)


def test_delete_over_the_gradio_api_needs_the_same_confirmation(doomed_article: str, base_url: str) -> None:
    tab = GradioSession(base_url)
    stranger = GradioSession(base_url)
    try:
        tab.open_page()
        stranger.open_page()
        # A row's Delete button triggers the table's select event with the row's article id.
        delete, confirm = tab.fn_index("library-table", "select"), tab.fn_index("confirm-delete", "click")

        status, confirm_box, question, _ = tab.call(delete, [], {"article_id": doomed_article})
        assert status == "" and confirm_box.get("visible") is True and DOOMED_FILE in question
        assert DOOMED_FILE in indexed_docs(base_url)
        # Another session cannot confirm the delete this one was asked about.
        refused = stranger.call(confirm, [None, None])[0]
        assert "No delete is waiting for confirmation" in refused
        assert DOOMED_FILE in indexed_docs(base_url)

        confirmed = tab.call(confirm, [None, None])[0]
        assert f"Deleted {DOOMED_FILE}" in confirmed
        assert DOOMED_FILE not in indexed_docs(base_url)
        assert "No delete is waiting" in tab.call(confirm, [None, None])[0], "a confirmation deletes once"
    finally:
        tab.close()
        stranger.close()


def test_a_too_long_question_says_how_long_and_the_limit_and_stays_in_the_box(chat: ChatPage) -> None:
    typed = SEED_QUESTION + " Please answer in full detail." * 100
    assert len(typed) > 2_000  # answer.max_question_chars

    chat.question_box.fill(typed)
    chat.question_box.press("Enter")

    error = chat.turns.first.locator(".bubble.error")
    expect(chat.turns.first).to_have_attribute("data-state", "error")
    expect(error).to_contain_text(f"Could not answer. The question is {len(typed):,} characters long; "
                                  "the limit is 2,000 characters.")
    expect(error).to_contain_text(f"Shorten it by {len(typed) - 2_000:,} characters")
    expect(chat.question_box).to_have_value(typed)
    chat.shot("14-too-long-question-kept")

    chat.question_box.fill(SEED_QUESTION)  # fixed in place, it is answered
    chat.question_box.press("Enter")
    expect(chat.turns.nth(1)).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
    expect(chat.question_box).to_have_value("")


def test_typing_more_sources_than_the_slider_allows_is_clamped_with_a_visible_note(chat: ChatPage) -> None:
    chat.page.get_by_text("Settings", exact=True).click()  # closed by default
    number_box = chat.page.locator("#sources-to-use input[type=number]")
    note = chat.page.locator(".sources-note")
    expect(note).to_be_hidden()

    # Clicked first, as a reader would: a click waits until the box is still for two frames. Gradio
    # renders the children of a closed accordion only when it first opens, and a frame later sets
    # their initial values again; a fill straight away (before the box was ever painted) was reset
    # to 5 by that (3 of 50 runs, each after the page-load restore had landed).
    number_box.click()
    number_box.fill("25")
    number_box.press("Tab")

    expect(note).to_be_visible()
    expect(chat.page.locator("#sources-to-use .sources-note")).to_have_count(1)  # right under the slider
    expect(note).to_have_text("25 is more than 20, the most Sources to use allows: set to 20.")
    expect(number_box).to_have_value("20")
    chat.shot("15-sources-clamped-with-a-note")
    turn = chat.ask(SEED_QUESTION)
    expect(turn.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)

    number_box.fill("5")  # a number in range clears the note
    expect(note).to_be_hidden()


def test_a_number_typed_into_the_settings_while_the_page_loads_is_kept_and_used(
        browser: Browser, base_url: str) -> None:
    """The page-load restore lands while a number is being typed into *Sources to use*: the number
    box keeps the focus (the restore used to move it to the question box, which then got the rest
    of the number), and the next question is asked with the whole number."""
    gradio = GradioPage(base_url, timeout=30)
    restore = gradio.load_index("browserstate")
    ask = gradio.fn_index("question-box", "submit")
    restore_outputs = next(d["outputs"] for d in gradio.dependencies if d["id"] == restore)
    touched = {gradio.components[i]["props"].get("elem_id") for i in restore_outputs}
    assert not touched & {"sources-to-use", "answer-mode"}, "the restore leaves the settings alone"
    gradio.http.close()

    def event(request: Request) -> dict:
        return json.loads(request.post_data or "{}")

    held: list[Route] = []
    sent: list[dict] = []

    def hold_the_restore(route: Route) -> None:
        body = event(route.request)
        sent.append(body)
        if body.get("fn_index") == restore and not held:
            held.append(route)  # let through below, once the first digit is typed
        else:
            route.continue_()

    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.route("**/gradio_api/queue/join*", hold_the_restore)  # the page adds a "?"
        with page.expect_request(lambda r: "/queue/join" in r.url and event(r).get("fn_index") == restore):
            page.goto(base_url)
        question_box = page.locator("#question-box textarea")
        number_box = page.locator("#sources-to-use input[type=number]")
        page.get_by_text("Settings", exact=True).click()
        number_box.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("1")
        assert held, "the restore is held"
        expect(question_box).not_to_be_editable()  # it has not landed: the box opens with it

        held[0].continue_()
        # The box opens and the restore's follow-up step runs in the same task of the page, so
        # once the box is seen open, that step has decided where the focus goes.
        expect(question_box).to_be_editable(timeout=30_000)
        page.keyboard.type("2")

        expect(number_box).to_have_value("12")
        expect(question_box).to_have_value("")
        expect(number_box).to_be_focused()
        question_box.fill(SEED_QUESTION)
        question_box.press("Enter")
        turn = page.locator("#conversation .turn").first
        expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
        expect(turn.locator(".bubble.answer")).to_contain_text(SEED_ANSWER_PHRASE)
        asked = [body["data"] for body in sent if body.get("fn_index") == ask]
        assert [data[0] for data in asked] == [SEED_QUESTION] and asked[0][2] == 12, asked
        expect(number_box).to_have_value("12")

        # Untouched while the page loads, the question box gets the focus once it opens.
        page.reload()
        expect(question_box).to_be_editable(timeout=30_000)
        expect(question_box).to_be_focused()
    finally:
        context.close()
