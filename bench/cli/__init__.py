"""The `bench` command: a thin layer over bench.api, one module per command.

User errors (BenchError) print as one paragraph and exit with code 2; nothing stored is touched by them. Only the
standard library is imported here, so `bench --help` and input errors answer at once.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import textwrap

from bench.cli import (
    analyze,
    compare,
    data,
    doctor,
    export,
    import_runs,
    leaderboard,
    leases,
    listing,
    pack,
    perf,
    run,
    score,
    show,
    study,
    validate,
)
from bench.errors import BenchError

COMMANDS = (listing, validate, run, show, leaderboard, study, analyze, perf, data, doctor, score, leases, compare,
            export, pack, import_runs)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = argparse.ArgumentParser(prog="bench", description="peft-bench: benchmark PEFT methods reproducibly.")
    parser.add_argument("--version", action="version", version=f"peft-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("timm").setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
        return result
    except BenchError as exc:
        print_error(str(exc))
        return exc.exit_code
    except BrokenPipeError:  # `bench list methods | head`: the reader went away, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are stored; run the same command again to resume.", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print_error(
            f"could not write{where}: {exc.strerror or exc}. Nothing stored was changed: every file of the "
            "store and cache is written to a temp file and renamed into place, so the previous state is "
            "intact and the unfinished run is recomputed (or resumed from its last checkpoint) by the same "
            "command. Free space or fix the permissions, then run it again."
        )
        return 2


def print_error(text: str) -> None:
    print("error: " + textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False), file=sys.stderr)
