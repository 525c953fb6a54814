"""The chat in a real headless Chromium, against ``qa serve`` over an index of seeds/.

One server and one browser serve the whole module; each test opens its own browser context,
so conversations never leak between tests. Screenshots of each state land in
test-artifacts/ui/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from gradio_client import Client
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from _browser import LAPTOP, PHONE, launch_chromium, screenshot_path
from _live import qa_server
from conftest import SEED_FILE, SEEDS, make_settings
from qa import QAService

SEED_QUESTION = "How many anti-ballistic missiles will encompass Russia?"
SEED_ANSWER_PHRASE = "four hundred anti-ballistic missiles will encompass Russia"
FOLLOW_UP = "Where have they already been placed?"
UNANSWERABLE = "What is the capital of France?"
UPLOAD_LIMIT = 20_000
ANSWER_TIMEOUT_MS = 30_000

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class ChatPage:
    """The chat as a user drives it, plus what the page did that a user would not see."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.add_init_script(RECORD_TURN_STATES)
        page.goto(base_url)
        expect(self.question_box).to_be_editable(timeout=30_000)

    @property
    def question_box(self) -> Locator:
        return self.page.locator("#question-box textarea")

    @property
    def turns(self) -> Locator:
        return self.page.locator("#conversation .turn")

    @property
    def sources(self) -> Locator:
        return self.page.locator("#sources-panel .sources-body")

    def ask(self, question: str) -> Locator:
        """Send ``question`` and wait for its turn to finish; returns the turn."""
        count = self.turns.count()
        self.question_box.fill(question)
        self.question_box.press("Enter")
        turn = self.turns.nth(count)
        expect(turn).to_have_attribute("data-state", "done", timeout=ANSWER_TIMEOUT_MS)
        return turn

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
    expect(chat.page.locator("#examples")).to_contain_text(SEED_QUESTION)

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
    chat.page.locator("#delete-choice input").click()
    chat.page.get_by_role("option").filter(has_text=PAYLOAD_FILE).click()
    chat.page.locator("#delete-button").click()
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
