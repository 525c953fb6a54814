"""Files → :class:`~qa._models.Article`: a title plus numbered paragraphs with their spans.

Spans index the *source text*: for ``.txt`` and ``.md`` the file decoded as
UTF-8 with undecodable bytes replaced; for ``.html`` the text extracted by
:func:`html_to_text` (what :func:`source_text` returns), since an HTML file has
no paragraph text of its own to point into.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from qa._errors import InvalidInput
from qa._models import Article, Paragraph
from qa._text import is_boilerplate, iter_blocks, starts_trailing_list, word_count

SUFFIX_KINDS = {".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


class SkipFile(InvalidInput):
    """A file that cannot become an article (binary, empty, unreadable); ingest reports and skips it."""


def article_id_for(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]


def decode(raw: bytes) -> tuple[str, bool]:
    """The text of ``raw`` as UTF-8 (BOM dropped), and whether bytes had to be replaced."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _looks_binary(raw: bytes) -> bool:
    sample = raw[:8192]
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control > len(sample) * 0.05


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"))


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, for a reason a person reads."""
    return next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file, else :class:`SkipFile` with the reason.

    Opened non-blocking and checked on the open descriptor, so a named pipe or a device
    can neither block the caller nor be swapped in between a check and the read. Only the
    size the file system reports is read: a ``/proc``-like file (size 0) reads as empty."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror or exc}") from None
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile(f"not a regular file: {file_kind(info.st_mode)}")
        os.set_blocking(handle, True)
        pieces, remaining = [], info.st_size
        while remaining > 0:
            piece = os.read(handle, min(remaining, 1 << 20))
            if not piece:
                break
            pieces.append(piece)
            remaining -= len(piece)
        return b"".join(pieces)
    except OSError as exc:
        raise SkipFile(f"unreadable: {exc.strerror or exc}") from None
    finally:
        os.close(handle)


def source_text(path: Path) -> str:
    """The text that paragraph spans index, for a file of any supported kind."""
    text, _ = decode(read_regular_file(path))
    return html_to_text(text) if SUFFIX_KINDS.get(path.suffix) == "html" else text


def parse_file(path: Path, root: Path) -> Article:
    """Read and parse one file; raises :class:`SkipFile` with the reason when it is not an article."""
    kind = SUFFIX_KINDS.get(path.suffix)
    if kind is None:
        raise SkipFile(f"unsupported file type {path.suffix or '(none)'}")
    raw = read_regular_file(path)
    if not raw.strip():
        raise SkipFile("empty file")
    if _looks_binary(raw):
        raise SkipFile("binary file, not text")
    text, replaced = decode(raw)
    warnings = ("not valid UTF-8: undecodable bytes replaced with U+FFFD",) if replaced else ()
    if kind == "html":
        text = html_to_text(text)
    title, paragraphs = parse_text(text, markdown=kind in ("md", "html"))
    if not paragraphs:
        raise SkipFile("no paragraphs of text")
    root = root.resolve()
    doc = path.name if root.is_file() else path.resolve().relative_to(root).as_posix()
    return Article(
        article_id=article_id_for(path),
        doc=doc,
        path=path.resolve(),
        root=root,
        title=title or path.stem,
        paragraphs=tuple(paragraphs),
        content_hash=hashlib.sha256(raw).hexdigest(),
        kind=kind,
        warnings=warnings,
    )


_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n.*?\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


@dataclass
class _Block:
    start: int
    end: int
    heading_level: int = 0  # 0: not a heading
    heading_text: str = ""


def _blocks(text: str, markdown: bool) -> list[_Block]:
    begin = 0
    if markdown and (front := _FRONT_MATTER.match(text)):
        begin = front.end()
    blocks: list[_Block] = []
    for start, end in iter_blocks(text, begin):
        if not markdown:
            blocks.append(_Block(start, end))
            continue
        # A Markdown heading line may sit directly on top of its paragraph.
        line_start = start
        for line in text[start:end].splitlines(keepends=True):
            heading = _MD_HEADING.match(line.strip())
            if heading:
                stripped_start = line_start + (len(line) - len(line.lstrip()))
                blocks.append(
                    _Block(stripped_start, stripped_start + len(line.strip()),
                           len(heading.group(1)), heading.group(2).strip())
                )
                line_start += len(line)
                start = line_start
            else:
                break
        if start < end and text[start:end].strip():
            rest = list(iter_blocks(text, start, end))
            if rest:
                blocks.append(_Block(rest[0][0], rest[-1][1]))
    return blocks


def _looks_like_heading(block: str) -> bool:
    """A one-line block, short, with no closing punctuation: a title or a section heading."""
    return (
        "\n" not in block
        and 0 < word_count(block) <= 16
        and not re.search(r"[.,;:\"”’)]$", block)
        and (block[:1].isupper() or block[:1].isdigit())
    )


# Headlines may open with a quote mark ('No re-draft' for EU patent law), a currency sign
# or an entity ($1m payoff..., &#163;1.8m fine...), a lower-case brand (iTunes ...), and
# end with a closing quote, a parenthesis or an ellipsis; a quoted full sentence
# ('"We won." he said' or "'I quit.'") is still a paragraph.
_TITLE_OPENING = re.compile(r"""^[\w'"‘“$£€&#(\[]""")
_SENTENCE_END = re.compile(r"""(?<!\.\.)[.!?,;:]['"’”]?$""")


def _looks_like_title(line: str) -> bool:
    """The first line of a plain-text article that is its headline (more lenient than a section heading)."""
    return (
        "\n" not in line
        and 0 < word_count(line) <= 16
        and bool(_TITLE_OPENING.match(line))
        and not _SENTENCE_END.search(line)
    )


def parse_text(text: str, markdown: bool = False) -> tuple[str, list[Paragraph]]:
    """The title and the numbered paragraphs of an article's text, boilerplate left out."""
    title = ""
    section = ""
    paragraphs: list[Paragraph] = []
    for index, block in enumerate(_blocks(text, markdown)):
        body = text[block.start : block.end]
        if starts_trailing_list(body):
            break
        if is_boilerplate(body):
            continue
        heading = block.heading_text if block.heading_level else ""
        if not heading and not markdown and _looks_like_heading(body):
            heading = body
        if not heading and index == 0 and not markdown and _looks_like_title(body):
            heading = body
        if not heading and index == 0 and not markdown:
            # A first block with a short first line: that line is the title.
            first_line, _, rest = body.partition("\n")
            if rest.strip() and _looks_like_title(first_line.strip()):
                title = first_line.strip()
                rest_start = block.start + body.index(rest)
                for s, e in iter_blocks(text, rest_start, block.end):
                    paragraphs.append(Paragraph(len(paragraphs) + 1, s, e, text[s:e], section))
                continue
        if heading:
            if not title and not paragraphs:
                title = heading
            else:
                section = heading
            continue
        paragraphs.append(Paragraph(len(paragraphs) + 1, block.start, block.end, body, section))
    return title, paragraphs


_SKIPPED_TAGS = {"script", "style", "noscript", "nav", "header", "footer", "aside", "form",
                 "svg", "template", "iframe", "button", "select"}
_BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "article", "section", "main", "blockquote", "br",
               "tr", "table", "pre", "figure", "figcaption", "dd", "dt", "dl", "hr", "body"}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip_depth = 0
        self._in_title = False
        self._heading_level = 0

    def _flush(self) -> None:
        content = re.sub(r"\s+", " ", "".join(self._current)).strip()
        self._current = []
        if content:
            prefix = "#" * self._heading_level + " " if self._heading_level else ""
            self.blocks.append(prefix + content)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = _HEADING_TAGS[tag]
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADING_TAGS:
            self._flush()
            self._heading_level = 0
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self._current.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML page: one block per paragraph, headings as Markdown ``#`` lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    extractor._flush()
    blocks = extractor.blocks
    title = re.sub(r"\s+", " ", extractor.title).strip()
    if title and not (blocks and blocks[0].startswith("# ")):
        blocks.insert(0, "# " + title)
    return "\n\n".join(blocks) + "\n"
