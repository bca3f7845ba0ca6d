"""The ``inbox-pipeline`` command.

Each sub-module registers its sub-commands with ``register(subparsers)``; a
sub-command is a function ``(args) -> int``. Wrong input raises ``CliError``
and becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inbox_pipeline.cli import admin, convert, explain
from inbox_pipeline.cli.errors import CliError
from inbox_pipeline.config import load_dotenv_once

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inbox-pipeline",
        description="Email newsletters in, clean Kindle EPUBs out.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    convert.register(sub)
    admin.register(sub)
    explain.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv_once()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"inbox-pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the promise is one line, never a traceback
        print(f"inbox-pipeline: error: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
