"""llama-cpp-python's OpenAI-compatible server, with llama.cpp's extra buffer types turned off.

    python qa/llm/local_server.py --model MODEL.gguf --host 127.0.0.1 --port 8080 [--n_ctx 2048 ...]

Takes the arguments of ``python -m llama_cpp.server`` (``--help`` lists them), plus
``--listen_fd FD``: serve on an already listening socket instead of ``--host``/``--port``
(how :mod:`qa.llm._supervisor` starts it, so the port it picked cannot be taken in between),
and ``--parent_pid PID``: die with the process that started this one (and write no core file).

Why: llama.cpp's "extra buffer types" (AMX tiles and repacked weights) segfault in the
first decode on some CPUs with AMX, killing whatever process runs the model (issue 14).
``use_extra_bufts`` is a field of the model parameters, not an argument of
``llama_cpp.Llama``, which builds the parameters from ``llama_model_default_params()``
inside its ``__init__``; so the defaults themselves are changed, before any model loads.
The build (the Makefile's ``LLAMA_CMAKE_ARGS``) leaves those paths out as well. Lines starting
``local_server:`` in the output say what the library was built with and what the model got.

Self-contained on purpose (no ``qa`` imports): the supervisor runs this file by path, so the
child does not import the ``qa`` package (chromadb, llama-index: seconds and memory) for nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
from typing import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when the one that started it ends, however it ends.

    Set here rather than in ``Popen(preexec_fn=...)``: the parent is a threaded server, where
    running Python between fork and exec can deadlock. The check after it covers a parent that
    ended before the call."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def turn_off_extra_buffer_types() -> None:
    """Make every model llama-cpp-python loads from now on use ``use_extra_bufts = False``."""
    import llama_cpp  # noqa: PLC0415  (heavy and native: only the process that runs a model loads it)
    import llama_cpp.llama_cpp as native  # noqa: PLC0415

    defaults = native.llama_model_default_params
    if getattr(defaults, "extra_buffer_types_off", False):
        return

    def llama_model_default_params_without_extra_buffer_types():
        params = defaults()
        params.use_extra_bufts = False
        return params

    llama_model_default_params_without_extra_buffer_types.extra_buffer_types_off = True
    # llama_cpp.llama and llama_cpp._internals look the function up on the module at each call.
    native.llama_model_default_params = llama_model_default_params_without_extra_buffer_types
    llama_cpp.llama_model_default_params = llama_model_default_params_without_extra_buffer_types


def report_build() -> None:
    """The CPU features llama.cpp was built with and will use (AMX and REPACK would be listed), on stderr."""
    import llama_cpp.llama_cpp as native  # noqa: PLC0415

    features = native.llama_print_system_info().decode("utf-8", "replace").strip()
    print(f"local_server: llama.cpp system info: {features}", file=sys.stderr, flush=True)


def report_loaded_model_parameters() -> None:
    """The parameters the served model was loaded with, as llama.cpp got them, on stderr."""
    import llama_cpp.server.app as server_app  # noqa: PLC0415

    params = server_app._llama_proxy._current_model.model_params  # noqa: SLF001  (the server keeps no public handle)
    print(f"local_server: loaded model parameters: use_extra_bufts = {params.use_extra_bufts}",
          file=sys.stderr, flush=True)


def no_core_dumps() -> None:
    """A crash of a supervised model is reported and restarted; a core file of a 1 GB process
    written into the server's working folder helps nobody there."""
    import resource  # noqa: PLC0415  (POSIX only)

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: Sequence[str] | None = None) -> None:
    # Before the slow imports below: the parent may end while they run.
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--parent_pid", type=int)
    known, _ = early.parse_known_args(argv)
    if known.parent_pid is not None:
        die_with_parent(known.parent_pid)
        no_core_dumps()

    turn_off_extra_buffer_types()
    report_build()
    import uvicorn  # noqa: PLC0415
    from llama_cpp.server.app import create_app  # noqa: PLC0415
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args  # noqa: PLC0415
    from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python qa/llm/local_server.py", description=__doc__.split("\n\n")[0])
    add_args_from_model(parser, Settings)
    parser.add_argument("--listen_fd", type=int, help="serve on this listening socket (ignores --host/--port)")
    parser.add_argument("--parent_pid", type=int, help="exit when the process with this id ends (Linux)")
    args = parser.parse_args(argv)
    server_settings = parse_model_from_args(ServerSettings, args)
    app = create_app(server_settings=server_settings, model_settings=[parse_model_from_args(ModelSettings, args)])
    report_loaded_model_parameters()
    server = uvicorn.Server(uvicorn.Config(app, host=server_settings.host, port=server_settings.port))
    server.run(sockets=[socket.socket(fileno=args.listen_fd)] if args.listen_fd is not None else None)


if __name__ == "__main__":
    main()
