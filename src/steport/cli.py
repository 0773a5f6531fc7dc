"""The ``steport`` command. Each package contributes its subcommands through an
``add_commands(subparsers)`` function listed in COMMAND_MODULES."""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, what it adds); imported lazily so `steport --help` stays fast.
COMMAND_MODULES = [
    "steport.train.cli",    # train
    "steport.demo_cli",     # demo (steport.pipeline)
    "steport.export.cli",   # export, verify
    "steport.deploy.cli",   # serve, deploy
    "steport.bench_cli",    # bench
]
# Extras a deployment may leave out (the `train` extra); their commands are then absent.
OPTIONAL_DEPS = {"torch", "onnxscript", "sklearn", "yaml", "tqdm", "matplotlib"}


def build_parser() -> argparse.ArgumentParser:
    from steport import __version__

    ap = argparse.ArgumentParser(prog="steport", description=(
        "Train, export, verify, benchmark and serve approximate, binary, PACT and logic-gate "
        "networks."))
    ap.add_argument("--version", action="version", version=f"steport {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("steport"):
                continue  # a package without commands yet
            if e.name and e.name.split(".")[0] in OPTIONAL_DEPS:
                continue  # e.g. the serving image has no torch: no train/export commands
            raise
        m.add_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:
        # user errors (bad paths, unknown names, bad configs): one clear line, no traceback
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"steport {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
