"""Approximate-multiplier retraining on digits: train an int8 CNN with the exact product,
swap in an approximate multiplier (accuracy before retraining), fine-tune a few epochs
with the approximate forward and STE backward (accuracy after). Writes a markdown table.

    python examples/approx_finetune.py [--epochs 10] [--finetune 3] [--out reports/approx_finetune.md]
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from steport.train.data import load_digits
from steport.train.layers.approx import _ApproxBase
from steport.train.loop import FitConfig, evaluate, fit
from steport.train.models import build_model
from steport.train.multipliers import get_multiplier

MULTIPLIERS = ["truncated_t3", "truncated_t4", "drum_k3", "drum_k4", "mitchell", "etm_l3"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune", type=int, default=3)
    ap.add_argument("--multipliers", nargs="*", default=MULTIPLIERS)
    ap.add_argument("--out", default="reports/approx_finetune.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_digits()
    torch.manual_seed(0)
    base = build_model("approx_cnn", width=16, multiplier=None, mode="lut")
    fit(base, data, FitConfig(epochs=args.epochs, lr=3e-3, progress=False))
    exact_acc = evaluate(base, data.test)
    rows = [("exact", 0.0, exact_acc, exact_acc, 0.0)]
    for name in args.multipliers:
        m = get_multiplier(name)
        model = copy.deepcopy(base)
        for layer in model.modules():
            if isinstance(layer, _ApproxBase):
                layer.set_multiplier(m)
        before = evaluate(model, data.test)
        t0 = time.perf_counter()
        fit(model, data, FitConfig(epochs=args.finetune, lr=1e-3, progress=False, seed=1))
        rows.append((name, m.metrics()["MRED%"], before, evaluate(model, data.test),
                     time.perf_counter() - t0))
        print(f"{name}: before {before:.4f} after {rows[-1][3]:.4f}", flush=True)
    md = ["| multiplier | MRED% | accuracy, no retraining | accuracy, fine-tuned "
          f"{args.finetune} epochs | fine-tune time (s) |", "|---|---|---|---|---|"]
    md += [f"| {n} | {e:.2f} | {b:.4f} | {a:.4f} | {t:.1f} |" for n, e, b, a, t in rows]
    text = "\n".join(md)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
