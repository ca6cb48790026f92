"""Argument types shared by ``%wiz`` and the ``wiz`` command line.

argparse's ``type=int`` takes any integer, and SQLite stores at most 2**63 - 1:
``%wiz cancel 9223372036854775808`` got as far as the database and came back as
an ``OverflowError`` traceback; ``type=float`` takes ``nan`` and negative
timeouts. These refuse such values while parsing, so the user sees the usual
one-line usage error naming the option.
"""

from __future__ import annotations

import argparse
import math

#: SQLite's INTEGER range.
INT_MAX = 2**63 - 1


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not -INT_MAX <= value <= INT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range (at most {INT_MAX})")
    return value


def integer(text: str) -> int:
    """Any whole number SQLite can store (a priority)."""
    return _int(text)


def count(text: str) -> int:
    """A whole number >= 1 (an id, a limit, attempts, workers)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0 (a delay)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds > 0 (a timeout, an interval)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def dollars(text: str) -> float:
    """A finite amount > 0 (a budget), ``$`` allowed: ``0.50`` or ``$0.50``."""
    try:
        value = float(text.strip().lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount like 0.50, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected an amount > 0, got {text}")
    return value
