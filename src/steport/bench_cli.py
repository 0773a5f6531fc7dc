"""`steport bench`: the benchmark runner (bench/, installed as steport.bench)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    from steport.bench.run import add_arguments

    p = sub.add_parser("bench", help="run kernel and model benchmarks side by side (ratios, JSON)")
    add_arguments(p)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from steport.bench.run import run_from_args

    return run_from_args(args)
