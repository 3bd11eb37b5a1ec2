"""Keeps exporter chatter (prints, C++ messages on file descriptors 1 and 2, warnings, log records) off the
user's console; the text is kept so that a failed export can show it."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


class Captured:
    """What was written while capturing; `text` is filled in when the `with` block ends."""

    def __init__(self) -> None:
        self.text = ""


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    found: dict[int, logging.StreamHandler] = {}
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler):
                found[id(h)] = h
    return list(found.values())


def _console_handlers() -> list[logging.StreamHandler]:
    """Log handlers that write to a stream: the console, or an older stand-in for it (not files on disk, not
    PyTorch's lazily opened trace files)."""
    return [h for h in _stream_handlers()
            if not isinstance(h, logging.FileHandler) and getattr(h, "stream", None) is not None]


def _swap(handler: logging.StreamHandler, stream) -> None:
    with handler.lock:  # type: ignore[union-attr]  # not setStream: that flushes the old stream, maybe closed
        handler.stream = stream


def _flush(*streams) -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__, *streams):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def capture_output() -> Iterator[Captured]:
    """Everything printed, warned or logged inside the block goes into `Captured.text` instead of the console.

    Redirects the process's stdout and stderr file descriptors too (onnxruntime and PyTorch's C++ write there
    directly), so other threads' console output is held back for the duration as well.
    """
    result = Captured()
    _flush()
    raw = tempfile.TemporaryFile(mode="a+b")  # appending: Python's writes and the C++ ones interleave safely
    # A real file behind sys.stdout / sys.stderr: parts of PyTorch ask them for fileno() (isatty checks).
    text = open(raw.fileno(), "a", encoding="utf-8", errors="replace", buffering=1, closefd=False)
    saved: dict[int, int] = {}
    for fd in (1, 2):
        try:
            saved[fd] = os.dup(fd)
            os.dup2(raw.fileno(), fd)
        except OSError:  # no such descriptor (a windowed app): nothing to hold back there
            saved.pop(fd, None)
    handlers = [(h, h.stream) for h in _console_handlers()]
    caught: list = []
    try:
        for h, _ in handlers:
            _swap(h, text)
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield result
    finally:
        try:
            for h, old in handlers:
                _swap(h, old)
            for h in _stream_handlers():  # handlers created inside the block must not keep writing into `text`
                if getattr(h, "stream", None) is text:
                    _swap(h, sys.stderr)
            _flush(text)
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            with contextlib.suppress(Exception):
                text.close()
            raw.seek(0)
            parts = [raw.read().decode("utf-8", errors="replace")]
            raw.close()
        parts += [f"{w.category.__name__}: {w.message}" for w in caught]
        result.text = "\n".join(p.strip("\n") for p in parts if p.strip())
