"""`python -m steport.deploy serve|deploy ...`: the serving commands alone. Same as
`steport serve` / `steport deploy`, without importing the other command modules (the
training CLI imports torch: ~180 MB of memory that a server does not need)."""
from __future__ import annotations

import argparse
import sys

from .cli import add_commands


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steport.deploy")
    add_commands(ap.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = ap.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:  # as `steport` does
        print(f"steport {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
