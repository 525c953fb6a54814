"""Parsing: numbering, spans, titles and sections, boilerplate, file kinds and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import html_to_text, parse_file, parse_text, source_text
from qa._articles import SkipFile

from conftest import SEED_FILE

NEWS = """Ministers back new rail line

The government approved the northern rail line on Tuesday. It will cost £4bn.

Also Read: Ten things about trains you never knew

Why it matters

Commuters in Leeds will save 20 minutes a day, the report said.

Share this article on Twitter

Other News:

Unrelated story one
Unrelated story two
"""


def test_paragraphs_are_numbered_in_reading_order_with_exact_spans() -> None:
    title, paragraphs = parse_text(NEWS)
    assert title == "Ministers back new rail line"
    assert [p.number for p in paragraphs] == [1, 2]
    for paragraph in paragraphs:
        assert NEWS[paragraph.start : paragraph.end] == paragraph.text
    assert paragraphs[0].text.startswith("The government approved")
    assert paragraphs[1].text.startswith("Commuters in Leeds")


def test_headings_become_section_context_not_paragraphs() -> None:
    _, paragraphs = parse_text(NEWS)
    assert paragraphs[0].section == ""
    assert paragraphs[1].section == "Why it matters"


def test_boilerplate_is_never_a_paragraph() -> None:
    _, paragraphs = parse_text(NEWS)
    joined = " ".join(p.text for p in paragraphs)
    assert "Also Read" not in joined
    assert "Share this" not in joined
    assert "Unrelated story" not in joined  # everything after a trailing "Other News:"


def test_seed_article_spans_match_the_file() -> None:
    article = parse_file(SEED_FILE, SEED_FILE.parent)
    text = SEED_FILE.read_text(encoding="utf-8")
    assert article.doc == SEED_FILE.name
    assert article.title.startswith("Aegis Missile Defense System")
    assert len(article.paragraphs) == 6
    assert all(text[p.start : p.end] == p.text for p in article.paragraphs)
    assert not any(p.text.startswith("Also Read") for p in article.paragraphs)
    assert article.paragraphs[2].section == "Aegis Missile Defense System Expansion Disrupts Larger Security Needs"


def test_doc_is_relative_to_the_ingested_folder(tmp_path: Path) -> None:
    nested = tmp_path / "politics" / "uk"
    nested.mkdir(parents=True)
    path = nested / "a.txt"
    path.write_text("Title here\n\nA paragraph of text about things.\n", encoding="utf-8")
    assert parse_file(path, tmp_path).doc == "politics/uk/a.txt"
    assert parse_file(path, path).doc == "a.txt"


def test_crlf_and_bom_keep_spans_exact(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeffA title\r\n\r\nFirst para line one\r\nline two.\r\n\r\nSecond para.\r\n".encode("utf-8"))
    article = parse_file(path, tmp_path)
    text = source_text(path)
    assert [p.text for p in article.paragraphs] == ["First para line one\r\nline two.", "Second para."]
    assert all(text[p.start : p.end] == p.text for p in article.paragraphs)


def test_invalid_utf8_is_decoded_with_replacement_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\xe9 opens\n\nThe caf\xe9 opened in Paris on Monday.\n".encode("latin-1"))
    article = parse_file(path, tmp_path)
    assert article.warnings and "UTF-8" in article.warnings[0]
    assert "\ufffd" in article.paragraphs[0].text
    assert source_text(path)[article.paragraphs[0].start : article.paragraphs[0].end] == article.paragraphs[0].text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.md", b"   \n\n  \n", "empty"),
        ("binary.txt", bytes(range(256)) * 4, "binary"),
        ("data.csv", b"a,b\n1,2\n", "unsupported"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SkipFile, match=reason):
        parse_file(path, tmp_path)


def test_markdown_headings_title_and_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "story.md"
    path.write_text(
        "---\nauthor: someone\n---\n# Floods hit the valley\n\nRiver levels rose two metres overnight.\n\n"
        "## Response\nTroops were sent to help on Friday morning.\n",
        encoding="utf-8",
    )
    article = parse_file(path, tmp_path)
    text = source_text(path)
    assert article.title == "Floods hit the valley"
    assert [p.text for p in article.paragraphs] == [
        "River levels rose two metres overnight.", "Troops were sent to help on Friday morning."]
    assert article.paragraphs[1].section == "Response"
    assert all(text[p.start : p.end] == p.text for p in article.paragraphs)


def test_html_text_is_extracted_and_spans_index_the_extracted_text(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Storm closes port</title><script>var x = 'never indexed';</script></head>"
        "<body><nav>Home | World</nav><h1>Storm closes port</h1><p>The port of Dover closed at noon.</p>"
        "<h2>Travel</h2><p>Ferries were <b>cancelled</b> until &amp; including Sunday.</p>"
        "<footer>Subscribe now</footer></body></html>",
        encoding="utf-8",
    )
    article = parse_file(path, tmp_path)
    text = source_text(path)
    assert text == html_to_text(path.read_text(encoding="utf-8"))
    assert article.title == "Storm closes port"
    assert [p.text for p in article.paragraphs] == [
        "The port of Dover closed at noon.", "Ferries were cancelled until & including Sunday."]
    assert article.paragraphs[1].section == "Travel"
    assert "never indexed" not in text and "Subscribe" not in text
    assert all(text[p.start : p.end] == p.text for p in article.paragraphs)


# Headlines written for these tests in the shapes real news folders use (issue 12): an
# opening quote mark, a currency sign or HTML entity, a lower-case brand, a trailing
# parenthesis, ellipsis or closing quote.
@pytest.mark.parametrize(
    "headline",
    [
        "'Quiet week' ahead for city markets",
        "\u2018Grand plan\u2019 for the new harbour",
        "\"Second bridge\" vote set for Monday",
        "'Harbour plan must go ahead'",
        "'My days at the harbour...'",
        "$2m grant for harbour museum",
        "&#163;3m fine for ferry operator",
        "eBay sellers face new fee",
        "Harbour v Quayside (Sat)",
    ],
)
def test_unusual_headline_is_the_title_not_paragraph_one(headline: str) -> None:
    text = f"{headline}\n\nThe harbour board met on Monday to discuss the plan.\n\nIt will cost £2m.\n"
    title, paragraphs = parse_text(text)
    assert title == headline
    assert [p.text for p in paragraphs] == [
        "The harbour board met on Monday to discuss the plan.",
        "It will cost £2m.",
    ]


@pytest.mark.parametrize(
    "first_block",
    ["'We will open the harbour,' the mayor said.", "\"It is done.\"", "Harbour works begin today, said the board;"],
)
def test_a_quoted_sentence_opening_an_article_stays_a_paragraph(first_block: str) -> None:
    title, paragraphs = parse_text(f"{first_block}\n\nThe board agreed.\n")
    assert title == ""
    assert paragraphs[0].text == first_block


def test_headline_with_quote_on_the_first_line_of_the_first_block() -> None:
    title, paragraphs = parse_text("'No delay' for harbour plan\nThe board met on Monday.\n")
    assert title == "'No delay' for harbour plan"
    assert [p.text for p in paragraphs] == ["The board met on Monday."]


BBC_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbc"


@pytest.mark.skipif(not BBC_FOLDER.is_dir(), reason="../shared/data/bbc is not present")
def test_every_bbc_article_gets_its_headline_as_title() -> None:
    # Before the quote-aware title rule 46 of the 2,225 files fell back to the file stem.
    titled_by_stem = [
        str(path.relative_to(BBC_FOLDER))
        for path in sorted(BBC_FOLDER.rglob("*.txt"))
        if parse_file(path, BBC_FOLDER).title == path.stem
    ]
    assert titled_by_stem == []
