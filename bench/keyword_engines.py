"""tantivy beside SQLite FTS5 as the on-disk keyword index, on the same paragraphs (issue 16's
"measure before choosing"; not a test).

    .venv/bin/python -m bench.keyword_engines --sizes 100k,1M

The paragraphs are the BBC articles' (``--bbc``), parsed by the product and tokenized by
:func:`qa._text.terms`, dealt out again at random until there are N of them, 5 per synthetic
article. For each engine and size, in this process: the bulk build (one commit), the size on
disk, the open of the built index by a fresh reader, BM25 top-100 latency over the dev set's
questions, and the update the product makes at each ingest: delete one article's paragraphs,
add 5 new ones, commit, then open a new reader and find them. SQLite runs with WAL, as several
readers beside a writer need.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import tantivy

from bench.scale import parse_size
from qa._articles import parse_file
from qa._eval import read_questions
from qa._ingest import scan
from qa._text import terms

REPO = Path(__file__).resolve().parent.parent
PER_ARTICLE = 5


def paragraphs_of(bbc: Path) -> list[str]:
    files, _, _ = scan([bbc])
    return [" ".join(terms(p.text)) for source in files for p in parse_file(source.path, source.root).paragraphs]


def corpus(source: list[str], n: int, seed: int = 1) -> list[tuple[str, str]]:
    """(article id, pre-tokenized text) of ``n`` paragraphs."""
    rng = random.Random(seed)
    texts = [source[rng.randrange(len(source))] for _ in range(n)]
    return [(f"a{i // PER_ARTICLE}", text) for i, text in enumerate(texts)]


def disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


class Tantivy:
    name = "tantivy"

    def __init__(self, folder: Path) -> None:
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("article_id", stored=True, tokenizer_name="raw")
        builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
        self.schema = builder.build()
        self.path = folder / "tantivy"
        self.path.mkdir()

    def build(self, docs: list[tuple[str, str]]) -> None:
        index = tantivy.Index(self.schema, path=str(self.path), reuse=False)
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        for article_id, text in docs:
            writer.add_document(tantivy.Document(article_id=article_id, body=text))
        writer.commit()
        writer.wait_merging_threads()

    def open(self):
        index = tantivy.Index.open(str(self.path))
        return index, index.searcher()

    def query(self, reader, words: list[str]) -> int:
        index, searcher = reader
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "body", w)) for w in words])
        return len(searcher.search(query, 100).hits)

    def update(self, remove: str, add: list[tuple[str, str]]) -> None:
        index = tantivy.Index.open(str(self.path))
        writer = index.writer(heap_size=64_000_000, num_threads=1)
        writer.delete_documents_by_term("article_id", remove)
        for article_id, text in add:
            writer.add_document(tantivy.Document(article_id=article_id, body=text))
        writer.commit()
        writer.wait_merging_threads()


class Fts5:
    name = "SQLite FTS5"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "fts5.sqlite"

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    def build(self, docs: list[tuple[str, str]]) -> None:
        with self._connect() as connection:
            connection.execute("CREATE VIRTUAL TABLE chunks USING fts5(article_id UNINDEXED, body, "
                               "tokenize = \"unicode61 separators ' '\")")
            connection.executemany("INSERT INTO chunks (article_id, body) VALUES (?, ?)", docs)

    def open(self):
        connection = self._connect()
        connection.execute("SELECT count(*) FROM chunks WHERE chunks MATCH 'the'").fetchone()
        return connection

    def query(self, reader, words: list[str]) -> int:
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        return len(reader.execute("SELECT rowid, bm25(chunks) AS s FROM chunks WHERE chunks MATCH ? "
                                  "ORDER BY s LIMIT 100", (match,)).fetchall())

    def update(self, remove: str, add: list[tuple[str, str]]) -> None:
        with self._connect() as connection:
            # article_id is not indexed: the delete scans, as it would without a side table.
            connection.execute("DELETE FROM chunks WHERE article_id = ?", (remove,))
            connection.executemany("INSERT INTO chunks (article_id, body) VALUES (?, ?)", add)


def measure(engine, docs: list[tuple[str, str]], questions: list[list[str]]) -> dict:
    began = time.perf_counter()
    engine.build(docs)
    build_s = time.perf_counter() - began
    began = time.perf_counter()
    reader = engine.open()
    open_s = time.perf_counter() - began
    latencies = []
    for words in questions:
        began = time.perf_counter()
        engine.query(reader, words)
        latencies.append((time.perf_counter() - began) * 1000)
    latencies.sort()
    new = [("fresh", "zorblatt quelmora harbour crane repaired eleven weeks")] * PER_ARTICLE
    began = time.perf_counter()
    engine.update("a0", new)
    fresh = engine.open()
    found = engine.query(fresh, ["zorblatt"])
    update_s = time.perf_counter() - began
    assert found == PER_ARTICLE, found
    return {"build_s": build_s, "open_s": open_s, "p50": statistics.median(latencies),
            "p95": latencies[int(0.95 * (len(latencies) - 1))], "update_s": update_s,
            "disk": disk(getattr(engine, "path"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M")
    parser.add_argument("--bbc", type=Path, default=REPO.parent / "shared" / "data" / "bbc")
    parser.add_argument("--questions", type=Path, default=REPO / "tests" / "data" / "bbc_dev.jsonl")
    args = parser.parse_args()
    source = paragraphs_of(args.bbc)
    questions = [terms(q.question) for q in read_questions(args.questions)]
    print(f"| paragraphs | engine | bulk build | on disk | open | top-100 p50 | p95 | "
          f"update 1 article + reopen |")
    print("|---|---|---|---|---|---|---|---|")
    for n in (parse_size(s) for s in args.sizes.split(",")):
        docs = corpus(source, n)
        for engine_class in (Tantivy, Fts5):
            with tempfile.TemporaryDirectory(prefix="qa-keyword-engines-") as scratch:
                engine = engine_class(Path(scratch))
                m = measure(engine, docs, questions)
                print(f"| {n:,} | {engine.name} | {m['build_s']:.1f} s | {m['disk'] / 1e6:.0f} MB | "
                      f"{m['open_s'] * 1000:.0f} ms | {m['p50']:.2f} ms | {m['p95']:.2f} ms | "
                      f"{m['update_s'] * 1000:.0f} ms |", flush=True)
                shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
