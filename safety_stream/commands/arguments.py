"""Argument types of the command line: each refuses a bad value with what is allowed."""

from __future__ import annotations

import argparse


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction from 0 to below 1")
    return value


def encoding_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoding",
        type=known_encoding_name,
        help="a CSV export's text encoding when it is not UTF-8, e.g. cp1252 (Excel on Windows)",
    )


def known_encoding_name(text: str) -> str:
    from safety_stream.validation.records import known_encoding

    try:
        return known_encoding(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
