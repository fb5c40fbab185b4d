"""``manage.py backup_policy``: what a retention policy would keep.

Reads ISO-8601 UTC timestamps on stdin, one per line (blank lines ignored), and
prints the ones the policy keeps -- restic's ``forget --keep-daily/-weekly/-monthly/
-yearly`` semantics, see escrow.backups.retention -- each exactly as given, in input
order (not restic's newest-first, so the output lines up with the input). With
``--explain`` each line ends in ``  # daily, weekly``. A bad line is an error naming
its line number, and then nothing is printed. Touches no database or storage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from escrow.backups.retention import RULES, Keep, TimestampError, parse_timestamps, stamp_reasons


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 to turn a rule off")
    return value


def _lines(stdin: IO[str]) -> Iterator[str]:
    """The lines of stdin. Read as bytes where there are bytes, so that a line that
    is not UTF-8 becomes a bad line with a number (a timestamp is ASCII, so the
    replacement character can never make a bad line good) instead of a traceback."""
    raw = getattr(stdin, "buffer", None)
    if raw is None:
        yield from stdin
        return
    for line in raw:
        yield line.decode("utf-8", errors="replace")


class Command(BaseCommand):
    help = (
        "Print the UTC timestamps (one per line on stdin) that restic's forget "
        "--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly would keep, as given."
    )
    # Like createsuperuser: call_command(..., stdin=io.StringIO(...)) feeds the input.
    stealth_options = ("stdin",)
    # A pure calculation: it must work even where the deployment checks would fail.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        for rule in RULES:
            parser.add_argument(
                f"--keep-{rule}",
                type=_count,
                default=0,
                metavar="N",
                help=f"Keep the newest backup of each of the N most recent {rule} buckets "
                "that have one (default 0: rule off; all rules off keeps everything).",
            )
        parser.add_argument(
            "--explain", action="store_true", help="Also print which rules keep each one."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # call_command(keep_daily=-1) skips argparse's type check, so check again.
            keep = Keep(**{rule: options[f"keep_{rule}"] for rule in RULES})
        except ValueError as error:
            raise CommandError(f"{error} (restic's 'unlimited' is not supported)") from error
        stdin: IO[str] = options.get("stdin") or sys.stdin
        try:
            stamps = parse_timestamps(_lines(stdin))
        except TimestampError as error:
            raise CommandError(f"Not a UTC timestamp:\n{error}") from error
        for stamp, reasons in zip(stamps, stamp_reasons(stamps, keep), strict=True):
            if not reasons:
                continue
            if options["explain"]:
                self.stdout.write(f"{stamp.text}  # {', '.join(reasons)}")
            else:
                self.stdout.write(stamp.text)
