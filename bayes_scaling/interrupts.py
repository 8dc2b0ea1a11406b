"""Ctrl-C that is never lost.

Python raises ``KeyboardInterrupt`` in whatever Python code runs when the signal arrives. When that code is a
garbage-collection callback (JAX registers one, and a numba compile triggers many collections), Python
prints "Exception ignored" and carries on: the interrupt is lost and the command runs to the end, writing
its output. The command line therefore installs :func:`install`, whose handler also records the request,
and the places where work starts or a file is written (:func:`check`: before sampling, at each look at the
draws, before a file is replaced) raise the interrupt again if it was swallowed. The swallowed interrupt is not
printed either: Python hands it to ``sys.unraisablehook``, which :func:`install` replaces with one that stays
silent about a recorded Ctrl-C (the command stops with its one line) and passes anything else to the default.
Library callers who do not install the handler are unaffected.
"""

from __future__ import annotations

import signal
import sys

_requested = False


def _handler(signum, frame) -> None:  # noqa: ARG001 - the signal module's signature
    global _requested
    _requested = True
    raise KeyboardInterrupt


def _unraisable(info) -> None:  # noqa: ANN001 - sys.UnraisableHookArgs
    """``sys.unraisablehook``: silent about a Ctrl-C that :func:`check` raises again; the rest as Python prints it."""
    if isinstance(info.exc_value, KeyboardInterrupt) and _requested:
        return
    sys.__unraisablehook__(info)


def install() -> None:
    """Answer Ctrl-C with ``KeyboardInterrupt`` and remember that it was asked for (the command line)."""
    global _requested
    _requested = False
    try:
        signal.signal(signal.SIGINT, _handler)
    except ValueError:  # not the main thread: signals go to the main thread's handler, left as it is
        return
    sys.unraisablehook = _unraisable


def requested() -> bool:
    """Whether Ctrl-C was pressed since :func:`install`."""
    return _requested


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed, even when its first ``KeyboardInterrupt`` was lost."""
    if _requested:
        raise KeyboardInterrupt("interrupted")
