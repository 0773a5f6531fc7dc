"""python -m steport.train.multipliers [--names ...] [--table signed|unsigned] [--md] [--plot DIR]"""
from __future__ import annotations

import argparse
import sys

from . import get_multiplier, list_multipliers, metrics_table, plot_error_surface


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m steport.train.multipliers",
                                 description="Error metrics (and plots) of approximate multipliers.")
    ap.add_argument("--names", nargs="*", default=None, help="multiplier names (default: presets)")
    ap.add_argument("--table", choices=["unsigned", "signed"], default="unsigned")
    ap.add_argument("--md", action="store_true", help="markdown table instead of plain text")
    ap.add_argument("--plot", metavar="DIR", help="also write DIR/<name>.png error surfaces")
    args = ap.parse_args(argv)
    names = args.names or list_multipliers()
    try:
        print(metrics_table(names, table=args.table, fmt="md" if args.md else "text"))
        if args.plot:
            for n in names:
                m = get_multiplier(n)
                print(plot_error_surface(m, f"{args.plot}/{m.name}.png", table=args.table))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
