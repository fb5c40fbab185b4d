"""``manage.py vault SUBCOMMAND``: operator tools for the vault.

``keygen`` works like ``age-keygen`` (``--pq`` for a hybrid post-quantum key).
``encrypt``, ``decrypt`` and ``rewrap`` work like the ``age`` tool: they read
IN (standard input by default) and write standard output unless ``-o FILE``
is given. Expected failures print one ``vault: ...`` line on stderr and exit
with status 1; the plumbing lives in :mod:`vault.cli`.

To add a subcommand, write an ``_add_<name>_arguments(parser)`` and a
``_handle_<name>(options)`` function and list them in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vault import cli
from vault.age import decrypt, encrypt, rewrap
from vault.site_clients import all_sites
from vault.sites import SiteError

# encrypt, decrypt and rewrap run before Django loads its apps (see manage.py), so
# the subcommands that need models import their services inside the handler.

Options = dict[str, Any]


class Subcommand(NamedTuple):
    help: str
    add_arguments: Callable[[CommandParser], None]
    handle: Callable[[Options], None]


def _add_input_output_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "input", nargs="?", metavar="IN", help="input file (default, or '-': standard input)"
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="write to OUT instead of standard output"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def _add_recipient_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "-r", "--recipient", action="append", default=[], help="an age1... recipient (repeatable)"
    )
    parser.add_argument(
        "-R",
        "--recipients-file",
        action="append",
        default=[],
        metavar="FILE",
        help="a file of age1... recipients, one a line, '#' comments (repeatable)",
    )
    parser.add_argument("-a", "--armor", action="store_true", help="write PEM-armored text")


def _add_identity_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "-i",
        "--identity",
        action="append",
        default=[],
        metavar="IDENTITY_FILE",
        help="an age-keygen identity file (repeatable)",
    )


_PASSPHRASE_HELP = f"use a passphrase, from ${cli.PASSPHRASE_ENV} or asked on the terminal"


def _add_encrypt_arguments(parser: CommandParser) -> None:
    _add_recipient_arguments(parser)
    parser.add_argument("-p", "--passphrase", action="store_true", help=_PASSPHRASE_HELP)
    _add_input_output_arguments(parser)


def _handle_encrypt(options: Options) -> None:
    cli.refuse_existing_output(options["output"], force=options["force"])
    recipients = cli.load_recipients(
        options["recipient"], options["recipients_file"], passphrase=options["passphrase"]
    )
    with (
        cli.age_errors(),
        cli.open_input(options["input"], label="vault: encrypting") as source,
        cli.open_output(
            options["output"], force=options["force"], binary=not options["armor"]
        ) as sink,
    ):
        encrypt(source, sink, recipients, armor=options["armor"])


def _add_decrypt_arguments(parser: CommandParser) -> None:
    _add_identity_arguments(parser)
    parser.add_argument("-p", "--passphrase", action="store_true", help=_PASSPHRASE_HELP)
    _add_input_output_arguments(parser)


def _handle_decrypt(options: Options) -> None:
    cli.refuse_existing_output(options["output"], force=options["force"])
    identities = cli.load_identities(options["identity"], passphrase=options["passphrase"])
    with (
        cli.age_errors(),
        cli.open_input(options["input"], label="vault: decrypting") as source,
        cli.open_output(options["output"], force=options["force"], binary=False) as sink,
    ):
        decrypt(source, sink, identities)


def _add_rewrap_arguments(parser: CommandParser) -> None:
    _add_identity_arguments(parser)
    _add_recipient_arguments(parser)
    _add_input_output_arguments(parser)


def _handle_rewrap(options: Options) -> None:
    cli.refuse_existing_output(options["output"], force=options["force"])
    identities = cli.load_identities(options["identity"])
    recipients = cli.load_recipients(options["recipient"], options["recipients_file"])
    with (
        cli.age_errors(),
        cli.open_input(options["input"], label="vault: re-wrapping") as source,
        cli.open_output(
            options["output"], force=options["force"], binary=not options["armor"]
        ) as sink,
    ):
        rewrap(source, sink, identities, recipients, armor=options["armor"])


def _add_keygen_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--pq",
        action="store_true",
        help="make a hybrid post-quantum key (ML-KEM-768 + X25519, age1pq1...), as age-keygen -pq",
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT", help="write the identity to OUT (mode 0600)"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def _handle_keygen(options: Options) -> None:
    cli.refuse_existing_output(options["output"], force=options["force"])
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    text, public = cli.keygen(post_quantum=options["pq"], now=now)
    with cli.open_output(options["output"], force=options["force"], binary=False) as sink:
        sink.write(text.encode("ascii"))
    if options["output"] not in (None, "-"):
        # Like age-keygen: the public key on stderr when the identity goes to a file.
        sys.stderr.write(f"Public key: {public}\n")


def _add_verify_manifest_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "manifest",
        nargs="?",
        metavar="MANIFEST",
        help="a manifest.json file (its signature: manifest.sig beside it)",
    )
    parser.add_argument("--signature", metavar="SIG_FILE", help="the base64 signature file")
    parser.add_argument(
        "--public-key", metavar="KEY", help="ed25519:<base64> (default: this system's signing key)"
    )
    parser.add_argument(
        "--deposit",
        type=int,
        metavar="ID",
        help="verify a stored deposit's manifest, read from the primary site",
    )


def _handle_verify_manifest(options: Options) -> None:
    from escrow.services.manifests import ManifestCheckFailed, manifest_check

    try:
        report = manifest_check(
            manifest_path=options["manifest"],
            signature_path=options["signature"],
            public_key=options["public_key"],
            deposit_id=options["deposit"],
        )
    except ManifestCheckFailed as failed:
        raise cli.VaultCliError(str(failed)) from failed
    sys.stdout.write(report + "\n")


def _add_repair_arguments(parser: CommandParser) -> None:
    """reconcile and scrub take no arguments: they walk every stored deposit."""


def _report_repairs(repairs: Any, *, verb: str) -> None:
    for line in getattr(repairs, verb):
        sys.stdout.write(f"{verb}: {line}\n")
    for line in repairs.recorded:
        sys.stdout.write(f"recorded: {line}\n")
    for line in repairs.promoted:
        sys.stdout.write(f"promoted to replicated: {line}\n")
    for line in repairs.problems:
        sys.stderr.write(f"problem: {line}\n")
    if repairs.problems:
        raise cli.VaultCliError(f"{len(repairs.problems)} problem(s) left; see above")
    sys.stdout.write(f"vault: {len(getattr(repairs, verb))} {verb}, no problems\n")


def _handle_reconcile(options: Options) -> None:
    from escrow.services.replication import vault_reconcile

    _report_repairs(vault_reconcile(), verb="copied")


def _handle_scrub(options: Options) -> None:
    from escrow.services.replication import vault_scrub

    _report_repairs(vault_scrub(), verb="healed")


def _handle_health(options: Options) -> None:
    """Exit non-zero when a deposit has no verified copy anywhere, or has been missing from
    a site for longer than ESCROW_COPY_GRACE_SECONDS; for monitoring and after repairs."""
    from escrow.services.vault_health import vault_health

    health = vault_health()
    for line in health.problems:
        sys.stderr.write(f"problem: {line}\n")
    for line in health.pending:
        sys.stdout.write(f"pending: {line}\n")
    if not health.healthy:
        raise cli.VaultCliError(
            f"{len(health.problems)} of {health.checked} deposit(s) lack verified copies; see above"
        )
    sys.stdout.write(
        f"vault: {health.checked} deposit(s) checked, every one verified in every site "
        f"({', '.join(health.sites)})"
        + (f" or within the grace period ({len(health.pending)} pending)" if health.pending else "")
        + "\n"
    )


def _handle_prepare_sites(options: Options) -> None:
    """Check every vault site and the backup site, and set up what a site allows
    (versioning, Object Lock retention); run it when deploying."""
    from escrow.backups.store import backup_store

    try:
        for site in [*all_sites(), backup_store()]:
            report = site.ensure_ready()
            lock = f", object lock {report.object_lock_mode}" if report.object_lock_mode else ""
            sys.stdout.write(
                f"{report.name} ({report.kind}): versioning "
                f"{'on' if report.versioning else 'off'}{lock}\n"
            )
            for note in report.notes:
                sys.stdout.write(f"  {note}\n")
    except SiteError as error:
        raise cli.VaultCliError(str(error)) from error


SUBCOMMANDS: dict[str, Subcommand] = {
    "encrypt": Subcommand(
        "encrypt IN to age recipients or a passphrase",
        _add_encrypt_arguments,
        _handle_encrypt,
    ),
    "decrypt": Subcommand(
        "decrypt an age file; only authenticated plaintext is written",
        _add_decrypt_arguments,
        _handle_decrypt,
    ),
    "rewrap": Subcommand(
        "give an age file a new header for new recipients; the payload is copied verbatim",
        _add_rewrap_arguments,
        _handle_rewrap,
    ),
    "keygen": Subcommand(
        "make a new age identity (X25519, or hybrid post-quantum with --pq)",
        _add_keygen_arguments,
        _handle_keygen,
    ),
    "verify-manifest": Subcommand(
        "check a deposit manifest's Ed25519 signature (and, with --deposit, its stored copy)",
        _add_verify_manifest_arguments,
        _handle_verify_manifest,
    ),
    "reconcile": Subcommand(
        "copy every stored part a site lacks from a good copy elsewhere; never deletes",
        _add_repair_arguments,
        _handle_reconcile,
    ),
    "scrub": Subcommand(
        "re-hash every stored copy and heal a damaged one from a good copy",
        _add_repair_arguments,
        _handle_scrub,
    ),
    "health": Subcommand(
        "fail when a deposit lacks a verified copy in a site for longer than the grace period",
        _add_repair_arguments,
        _handle_health,
    ),
    "prepare-sites": Subcommand(
        "check the vault and backup sites; turn on versioning and Object Lock retention",
        _add_repair_arguments,
        _handle_prepare_sites,
    ),
}


class Command(BaseCommand):
    help = "Vault operator tools; `vault SUBCOMMAND --help` describes each."
    # No database or model checks are needed, and skipping them keeps startup short.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, subcommand in SUBCOMMANDS.items():
            subcommand.add_arguments(
                subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
            )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            SUBCOMMANDS[options["subcommand"]].handle(options)
        except CommandError as error:
            self._fail(str(error), error.returncode, error)
        except BrokenPipeError as error:
            # The reader went away (`vault decrypt ... | head`); silence the
            # interpreter's own flush of stdout at exit, which would fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._fail("output closed before the end (broken pipe)", 1, error)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            self._fail(f"{error.strerror or error}{where}", 1, error)
        except KeyboardInterrupt as error:
            self._fail("interrupted", 130, error)

    def _fail(self, message: str, returncode: int, error: BaseException) -> None:
        # From the shell: one line, no traceback. From call_command(): the exception.
        if not getattr(self, "_called_from_command_line", False):
            raise error
        sys.stderr.write(f"vault: {message}\n")
        sys.stderr.flush()
        raise SystemExit(returncode)
