"""Ask questions about a folder of news articles and get answers that cite the paragraph.

Typical use:

    qa ingest seeds/            index the articles in a folder (incremental)
    qa ask "Who deployed it?"   answer from the indexed articles, with [n] citations
    qa serve                    chat UI at / and the HTTP API under /v1
    qa feedback                 the chat's 👍 / 👎 ratings, for qa eval

Settings come from config/default.toml; override any key with QA_<SECTION>_<KEY>
(e.g. QA_INDEX_DIR=/tmp/index) or point QA_CONFIG at another file.
"""

from __future__ import annotations

import functools
import gc
import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click
from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from qa._config import Settings, load_settings
from qa._errors import InvalidInput, QAError
from qa._eval import run_eval, summary_markdown
from qa._feedback import FeedbackStore, evaluation_questions, latest_ratings
from qa._models import ChatTurn, IngestReport
from qa._service import QAService


def _reports_errors(command):
    """Turn a :class:`QAError` into one line on stderr and its exit code, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except QAError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(
                "Interrupted. Nothing half-written is visible; run the same command again to finish.",
                err=True,
            )
            sys.exit(130)

    return wrapper


@contextmanager
def _ctrl_c_stops_for_sure() -> Iterator[Callable[[], None]]:
    """Ctrl-C raises :class:`KeyboardInterrupt` at once, as usual, and again at the next ``check()``.

    Python swallows a KeyboardInterrupt that lands in a finalizer the collector happens to be
    running (it prints "Exception ignored in ..."), and a long command would then carry on to the
    end; the progress callbacks call ``check()`` after every file or question.
    """
    pressed = False

    def on_ctrl_c(signum: int, frame: object) -> None:
        nonlocal pressed
        pressed = True
        raise KeyboardInterrupt

    def check() -> None:
        if pressed:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress_bar(description: str, stop_check: Callable[[], None]):
    """A tqdm bar on a terminal; elsewhere (logs, CI, pipes) a plain line every 5%."""
    bar: tqdm | None = None
    interactive = sys.stderr.isatty()

    def update(done: int, total: int) -> None:
        nonlocal bar
        stop_check()
        if not interactive:
            if done == total or done % max(1, total // 20) == 0:
                click.echo(f"{description}: {done}/{total} files", err=True)
            return
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="file", file=sys.stderr,
                       disable=None, leave=False, dynamic_ncols=True)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Settings file to use instead of config/default.toml (or set QA_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None) -> None:
    """Ask questions about a folder of news articles and get answers that cite the paragraph.

    Settings come from config/default.toml; any key can be overridden with
    QA_<SECTION>_<KEY>, for example QA_INDEX_DIR=/tmp/index.
    """
    ctx.ensure_object(dict)
    ctx.obj["config_file"] = config_file


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config_file"))
    except QAError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


def _summary_table(report: IngestReport) -> str:
    rows = [
        ("added", len(report.added)), ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)), ("removed", len(report.removed)),
        ("skipped", len(report.skipped)),
    ]
    lines = [f"{name:<10} {count:>7}" for name, count in rows]
    lines.append(f"{'embedded':<10} {report.chunks_embedded:>7} chunks in {report.seconds:.1f} s")
    for doc in report.removed:
        lines.append(f"removed: {doc} (file no longer in its folder)")
    for file, reason in report.skipped:
        lines.append(f"skipped: {file}: {reason}")
    for file, warning in report.warnings:
        lines.append(f"warning: {file}: {warning}")
    return "\n".join(lines)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Drop the index and build it again from the files.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
@_reports_errors
def ingest(ctx: click.Context, paths: tuple[Path, ...], rebuild: bool, as_json: bool) -> None:
    """Index the .txt, .md and .html articles in PATHS (default: the seeds folder).

    Incremental: unchanged files are not embedded again, changed files replace
    their old paragraphs, and files gone from an ingested folder are removed.
    Files that cannot be read are skipped and listed; they never stop the run.
    """
    settings = _settings(ctx)
    service = QAService(settings)
    with _ctrl_c_stops_for_sure() as stop_check:
        report = service.ingest(list(paths) or [settings.index.default_source], rebuild=rebuild,
                               progress=_progress_bar("Indexing", stop_check))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(_summary_table(report))


def _read_history(path: Path | None) -> list[ChatTurn] | None:
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return TypeAdapter(list[ChatTurn]).validate_python(raw)
    except OSError as exc:
        raise InvalidInput(f"cannot read the history file {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, ValidationError):
        raise InvalidInput(
            f"{path} is not a conversation: expected a JSON list of {{\"role\": \"user\"|\"assistant\", \"content\": ...}}"
        ) from None


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer object as JSON.")
@click.option("--history", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file of earlier turns [{role, content}, ...] for a follow-up question.")
@click.option("--k", type=int, default=None, help="How many paragraphs to read for the answer.")
@click.option("--mode", type=click.Choice(["extractive", "llm", "judged"]), default=None,
              help="Answer mode; default llm when [llm] backend is configured, else extractive. judged: the "
                   "extractive answer, withdrawn when the model judges that its paragraph does not answer.")
@click.pass_context
@_reports_errors
def ask(ctx: click.Context, question: str, as_json: bool, history: Path | None, k: int | None,
        mode: str | None) -> None:
    """Answer QUESTION from the indexed articles, citing the paragraphs it comes from.

    When the articles do not answer, says so and lists the closest articles as related.
    """
    service = QAService(_settings(ctx))
    response = service.ask(question, _read_history(history), k=k, mode=mode)
    if as_json:
        click.echo(response.model_dump_json(indent=2))
        return
    click.echo(response.answer)
    if response.notice:
        click.echo(f"({response.notice})")
    for sentence in response.unsupported:
        click.echo(f"Not supported by its citation: {sentence.text}")
    if response.citations:
        click.echo()
        for citation in response.citations:
            click.echo(f"[{citation.n}] {citation.title} — {citation.doc}, paragraph {citation.paragraph}")
    elif response.related:
        click.echo("\nRelated articles:")
        for paragraph in response.related:
            click.echo(f"- {paragraph.title} — {paragraph.doc}, paragraph {paragraph.paragraph}")


@cli.command(name="eval")
@click.argument("questions", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("eval-out"),
              show_default=True, help="Folder for results.jsonl, summary.json and summary.md.")
@click.option("--k", type=int, default=10, show_default=True, help="Paragraphs retrieved per question.")
@click.option("--feedback", "from_feedback", is_flag=True,
              help="Evaluate the chat's ratings (the questions `qa feedback --export` would write, kept in OUT/feedback-questions.jsonl).")
@click.pass_context
@_reports_errors
def eval_command(ctx: click.Context, questions: Path | None, out_dir: Path, k: int, from_feedback: bool) -> None:
    """Run every question in QUESTIONS (JSON lines) and print retrieval and answer metrics.

    Each line: {"id", "question", "answers": [...], "doc"?, "history"?}; empty
    answers means the articles do not answer it. A line may name the paragraphs
    that answer it, "gold_paragraphs": [{"doc", "paragraph"}]; a line with
    "rejected_answer" instead of "answers" (a thumbs-down from the chat) is not
    scored, only counted: is the rejected answer still the one given?

    With --feedback, the questions are the chat's ratings in the index folder.
    """
    settings = _settings(ctx)
    if from_feedback == (questions is not None):
        raise InvalidInput("give either a QUESTIONS file or --feedback (the chat's ratings), not both or neither")
    if from_feedback:
        questions = out_dir / "feedback-questions.jsonl"
        lines = _feedback_questions(settings)
        out_dir.mkdir(parents=True, exist_ok=True)
        questions.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                             encoding="utf-8")
    service = QAService(settings)
    service.start_llm()  # a misconfigured LLM stops the run here, not once per question
    with _ctrl_c_stops_for_sure() as stop_check:
        run = run_eval(service, questions, out_dir, k=k, progress=_progress_bar("Evaluating", stop_check))
    click.echo(summary_markdown(run.summary))
    click.echo(f"Wrote {out_dir}/results.jsonl, summary.json and summary.md")


def _feedback_questions(settings: Settings) -> list[dict]:
    """The latest rating of each rated answer as evaluation questions; an error when there are none."""
    store = FeedbackStore(settings.index.dir)
    read = store.read()
    if read.skipped_lines:
        click.echo(f"warning: {store.path}: skipped {len(read.skipped_lines)} line(s) that are not ratings "
                   f"(line {', '.join(map(str, read.skipped_lines[:5]))})", err=True)
    if not read.records:
        raise InvalidInput(f"no answers have been rated yet ({store.path} holds none): rate answers in the chat "
                           "with 👍 or 👎 first")
    return evaluation_questions(read.records)


@cli.command()
@click.option("--export", "export_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the ratings to this file in `qa eval`'s question format instead of listing them.")
@click.option("--json", "as_json", is_flag=True, help="Print every stored rating as a JSON line.")
@click.pass_context
@_reports_errors
def feedback(ctx: click.Context, export_file: Path | None, as_json: bool) -> None:
    """List the 👍 and 👎 ratings given in the chat, or export them for `qa eval`.

    Ratings are kept in feedback.jsonl in the index folder, one line per click,
    with the question, the earlier questions it followed, the answer the server
    gave and the paragraphs it cited. The list shows the latest rating of each
    answer. --export writes them as evaluation questions: a thumbs-up answer's
    gold is the paragraph it cited (its quoted sentences as the answers), a
    thumbs-up abstention says the articles do not answer, and a thumbs-down is a
    question to look at, with the answer that was rejected. Then:

        qa feedback --export rated.jsonl && qa eval rated.jsonl

    or in one step: qa eval --feedback.
    """
    settings = _settings(ctx)
    store = FeedbackStore(settings.index.dir)
    if as_json:
        for record in store.read().records:
            click.echo(record.model_dump_json())
        return
    if export_file is not None:
        lines = _feedback_questions(settings)
        try:
            export_file.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                                   encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {export_file}: {exc.strerror or exc}") from None
        up = sum(1 for line in lines if line["rating"] == "up")
        click.echo(f"Wrote {len(lines)} questions to {export_file}: {up} rated up (scored), "
                   f"{len(lines) - up} rated down (to look at). Run: qa eval {export_file}")
        return
    read = store.read()
    if read.skipped_lines:
        click.echo(f"warning: {store.path}: skipped {len(read.skipped_lines)} line(s) that are not ratings", err=True)
    ratings = latest_ratings(read.records)
    for record in ratings:
        cited = "; ".join(f"{c.doc} ¶{c.paragraph}" for c in record.citations) or (
            "abstained" if record.abstained else "no citation")
        mark = "👍" if record.rating == "up" else "👎"
        click.echo(f"{record.time:%Y-%m-%d %H:%M}  {mark}  {record.question}  [{cited}]")
    up = sum(1 for record in ratings if record.rating == "up")
    click.echo(f"{len(ratings)} rated answers: {up} 👍, {len(ratings) - up} 👎 ({store.path})")


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
@_reports_errors
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List the indexed articles: id, file, paragraphs and title."""
    records = QAService(_settings(ctx)).documents()
    if as_json:
        click.echo(json.dumps([
            {"id": r.article_id, "doc": r.doc, "title": r.title, "paragraphs": len(r.paragraphs),
             "ingested_at": r.ingested_at} for r in records], indent=2, ensure_ascii=False))
        return
    for record in records:
        click.echo(f"{record.article_id}  {record.doc}  ({len(record.paragraphs)} paragraphs)  {record.title}")
    click.echo(f"{len(records)} articles, {sum(len(r.paragraphs) for r in records)} paragraphs")


SHUTDOWN_GRACE_S = 5


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default from config: 8000).")
@click.pass_context
@_reports_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the chat UI at / and the HTTP API under /v1."""
    import uvicorn  # noqa: PLC0415  (only this command needs the server stack)

    from qa._server import create_app  # noqa: PLC0415

    settings = _settings(ctx)
    # The Host check admits the address the server is bound to, so the settings must say it.
    server = settings.server.model_copy(update={"host": host or settings.server.host,
                                                "port": port or settings.server.port})
    settings = settings.model_copy(update={"server": server})
    app = create_app(settings)
    # An open chat tab holds a connection that never closes by itself (Gradio's heartbeat), so
    # without a bound a stop (Ctrl+C, SIGTERM) waits for it forever; an answer still being
    # written gets this long to finish.
    uvicorn.run(app, host=server.host, port=server.port, log_level="info",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


def main() -> None:
    try:
        cli(obj={})
    finally:
        # The process ends here. Spare the interpreter its last full collection over every object
        # llama-index, Chroma and the manifest left behind (0.4 s of a one-shot `qa ask`, measured):
        # frozen objects are not collected, and the process's end frees them all the same.
        gc.freeze()


if __name__ == "__main__":
    main()
