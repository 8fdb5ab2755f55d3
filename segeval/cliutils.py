"""What both command lines share: argument types, and running a subcommand so that bad input
ends with one sentence on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from segeval.validation import InputError

__all__ = [
    "EXIT_BAD_INPUT",
    "float_list",
    "level",
    "non_negative_int",
    "positive_int",
    "printable",
    "run",
]

EXIT_BAD_INPUT = 2


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0; got {text!r}")
    return value


def level(text: str) -> float:
    """argparse type: a confidence level strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a level strictly between 0 and 1; got {text!r}")
    return value


def float_list(text: str) -> list[float]:
    """argparse type: numbers separated by commas."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be numbers separated by commas, like 0.2,0.4; got {text!r}"
        ) from None


def printable(text: str) -> str:
    """``text`` with control characters (terminal escape sequences) shown escaped, as ``\\x1b``.

    Names of segments, columns and files come from the user's data; printed raw, an escape
    sequence in one would drive the terminal. Newlines and tabs are kept.
    """
    return "".join(
        ch if ch in "\n\t" or (ch.isprintable() and ch not in "\x7f") else ascii(ch)[1:-1]
        for ch in text
    )


def _one_line_warnings(prog: str) -> Callable[..., None]:
    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(message).split())
        print(printable(f"{prog}: warning: {text}"), file=sys.stderr)

    return show


def run(
    prog: str,
    args: argparse.Namespace,
    commands: Mapping[str, Callable[[argparse.Namespace], None]],
) -> int:
    """Run ``commands[args.command]``; bad input becomes one line on stderr and exit code 2.

    Warnings are printed one plain line each (no file path, no source line).
    """
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(prog)
        try:
            commands[args.command](args)
        except (InputError, OSError) as exc:
            print(printable(f"{prog} {args.command}: error: {exc}"), file=sys.stderr)
            return EXIT_BAD_INPUT
    return 0
