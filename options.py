"""Checked command-line values shared by server.py and client.py: each takes the word typed
and returns the value, or raises argparse.ArgumentTypeError (argparse then prints the usage
and exits 2)."""
import argparse
import math


def port(text, lowest=1):
    """A TCP port number from `lowest` (0 lets the system choose) to 65535."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not lowest <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number ({lowest}-65535): {text!r}")
    return number


def any_port(text):
    """A port to listen on: 0 picks a free one."""
    return port(text, lowest=0)


MAX_SECONDS = 1e9      # about 31 years: 1e308 passed as finite, then a timer's overflowed


def seconds(text):
    """A positive number of seconds, at most MAX_SECONDS."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds up to "
                                         f"{MAX_SECONDS:,.0f}: {text!r}")
    return value


def count(text):
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number 0 or more: {text!r}")
    return value


def positive_count(text):
    """A whole number, 1 or more (a cap of 0 would refuse everyone)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number 1 or more: {text!r}")
    return value


def rate(text):
    """A finite rate, 0 or more (0 turns a limit off)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"not a rate 0 or more: {text!r}")
    return value


def file_name(text):
    """A file's name: not empty (an empty one named the working directory, and was said as
    if it were the file: a trial's `--credentials ''`)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty name names no file")
    return text
