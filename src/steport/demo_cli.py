"""`steport demo`: argument parsing; the pipeline is steport.pipeline."""
from __future__ import annotations

import argparse

# The pipeline trains: without the train extra (torch) this import fails and the command is
# left out, as `steport train` is (steport.cli skips modules missing optional deps).
import steport.train  # noqa: F401


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: train, export, verify and report",
                       description="Train, export, verify and measure the recipes of a data "
                       "set; every recipe's row is kept in OUT/results/<recipe>.json and the "
                       "report (OUT/report.md) is rebuilt from all rows there, so a subset "
                       "run merges into the table.")
    p.add_argument("-o", "--out", default=None,
                   help="output folder (default: reports/demo for digits, reports/fashion for "
                   "fashion-mnist)")
    p.add_argument("--data", default="digits",
                   help="run the built-in recipes of this data set (digits, fashion-mnist)")
    p.add_argument("--epochs", type=int, help="override every recipe's epochs")
    p.add_argument("--recipes", nargs="*", help="subset of recipes (default: all of --data); "
                   "their rows merge with the rows already in OUT/results")
    p.add_argument("--reuse", action="store_true",
                   help="skip training where OUT/<recipe>.pt is a finished run of the same "
                   "recipe (e.g. trained earlier with `steport train RECIPE -o OUT`)")
    p.add_argument("--fresh", action="store_true",
                   help="drop the rows of earlier runs even when running a subset")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .pipeline import run_demo

    return run_demo(args.out, recipes=args.recipes, epochs=args.epochs,
                    progress=not args.no_progress, data=args.data, reuse=args.reuse,
                    fresh=True if args.fresh else None)
