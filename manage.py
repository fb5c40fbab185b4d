#!/usr/bin/env python
from __future__ import annotations

import os
import sys

# `vault encrypt|decrypt|rewrap` work like the age tool and touch no database
# and no app, so they run without loading Django's apps: that keeps their
# start-up near the age tool's (see docs/benchmarks.md).
APP_FREE_COMMANDS = {("vault", "encrypt"), ("vault", "decrypt"), ("vault", "rewrap")}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from config.malloc import reuse_large_buffers

    reuse_large_buffers()  # `runserver` takes deposits, `vault` streams files: config/malloc.py
    if tuple(sys.argv[1:3]) in APP_FREE_COMMANDS:
        from escrow.management.commands.vault import Command

        Command().run_from_argv(sys.argv)
        return
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
