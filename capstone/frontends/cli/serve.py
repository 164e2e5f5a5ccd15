"""``serve``: one run's search engine as a web page and a JSON API (`capstone.frontends.web`),
bound to the loopback address unless told otherwise, until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import threading
from pathlib import Path

from capstone.common.memory import release_freed_memory
from capstone.frontends.cli.args import (
    add_data_args,
    add_model_args,
    add_student_arg,
    add_weights_arg,
    command,
    load_run,
)
from capstone.frontends.cli.output import Result, announce, note, other_data_warnings
from capstone.frontends.cli.photos import load_describer
from capstone.photos.weights import WeightsUnavailable

__all__ = ["add_parsers", "cmd_serve"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parsers(sub) -> None:
    """The ``serve`` command."""
    p = command(
        sub,
        "serve",
        cmd_serve,
        help="the search engine as a web page (and a JSON API)",
        description="Serve one run's search engine: search by text (with + / - terms and "
        "weights), browse images with their captions, tags and similar images, export results. "
        "Binds the loopback address unless told otherwise.",
    )
    add_data_args(p)
    add_model_args(p)
    add_weights_arg(p)
    add_student_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (8000; 0: any free port)")


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text}")
    return port


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; an OSError names both flags."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(128)
    except OSError as e:
        listener.close()
        if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
            raise OSError(
                f"--host {host}: not a valid address of this machine, cannot be bound "
                f"({e.strerror or e}); 127.0.0.1 serves this machine, 0.0.0.0 every network"
            ) from None
        raise OSError(
            f"--host {host} --port {port}: {e.strerror or e} (another server on that port? "
            "choose another --port)"
        ) from None
    return listener


def _cached_describer(weights: Path | None):
    """The server's ResNet-18 when its weights are at hand (``--weights`` or cached), else None:
    a server does not download them; its photo page says how to get them."""
    try:
        return load_describer(weights, download=False)
    except WeightsUnavailable:
        note("note: photo queries are off: no ResNet-18 weights (--weights FILE)")
        return None


def cmd_serve(*, host: str, port: int, weights: Path | None, **source) -> Result:
    """``serve``: the run that ``source`` (`load_run`'s flags) names, on ``host:port``, until
    Ctrl-C."""
    # Flask and the web app load only for this command: the others start faster without them.
    from werkzeug.serving import make_server

    from capstone.frontends.web.app import RequestHandler, create_app, host_names
    from capstone.frontends.web.service import SearchService

    listener = _listen(host, port)  # first: a port in use is said at once
    # searching needs no caption embeddings
    run, ds = load_run(**source, verbose=True, embed_captions=False)  # hands freed heap back
    other_data_warnings(run.warnings)
    service = SearchService.load(run, ds, _cached_describer(weights))
    release_freed_memory()  # what building the databases freed: a server runs for hours
    # bound by _listen, not werkzeug, which exits on an error instead of raising it
    app = create_app(service, hosts=host_names(host))  # a Host of another name is a 400
    bound = listener.getsockname()[1]
    server = make_server(
        host, bound, app, threaded=True, fd=listener.fileno(), request_handler=RequestHandler
    )
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"serving run {run.name} on {len(service.engines['validation'].database):,} validation "
        f"images and all {ds.data.n_images:,} at http://{shown}:{bound}/ (Ctrl-C stops)"
    )
    if host not in LOOPBACK:
        note(f"warning: --host {host}: other machines can reach this server")
    # Ctrl-C (and a service manager's SIGTERM) ask the loop to stop, rather than raise
    # KeyboardInterrupt wherever the main thread happens to be (raised in a finalizer, it is
    # only printed as ignored). Once, in a CI run, the server did not stop on Ctrl-C; not
    # reproduced in 40 runs since. `shutdown` waits for the loop to end: it runs in a thread.
    asked: list[int] = []

    def stop(signum, frame) -> None:
        if asked:  # a second Ctrl-C: out at once, as before
            raise KeyboardInterrupt
        asked.append(signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        listener.close()
    return Result(notes=("stopped",))
