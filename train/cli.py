"""`steport train`: argument parsing; the work is in steport.train.runner."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe (name or YAML path); writes checkpoints",
                       description="Train a recipe. Writes OUT/<name>.pt (last epoch, "
                       "resumable), OUT/<name>.best.pt (best test accuracy) and "
                       "OUT/<name>.json (metrics). Under torchrun (or with --nproc N) it "
                       "trains data-parallel; only rank 0 writes.")
    p.add_argument("recipe", help="built-in recipe name or path to a YAML recipe")
    p.add_argument("-o", "--out", default="runs", help="output folder (checkpoints, metrics)")
    p.add_argument("--epochs", type=int, help="total epochs (overrides the recipe)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms + cuDNN/cuBLAS settings")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint written by "
                   "`steport train` (same recipe); reaches the same weights as an "
                   "uninterrupted run")
    p.add_argument("--nproc", type=int, default=1,
                   help="spawn N local data-parallel processes (gloo on CPU, nccl on GPU); "
                   "the global batch size stays the recipe's")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from . import distributed
    from .recipes import load_recipe
    from .runner import fit_config, train_recipe, train_recipe_worker

    recipe = load_recipe(args.recipe)
    kwargs = dict(epochs=args.epochs, seed=args.seed, device=args.device,
                  deterministic=args.deterministic, progress=not args.no_progress,
                  resume=args.resume)
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc > 1:
        if distributed.env_info().enabled:
            raise ValueError("--nproc cannot be combined with torchrun (already distributed)")
        # validate everything cheap in this process first: errors stay one line
        fit_config(recipe, args.epochs, args.seed, args.device, args.deterministic, False)
        if args.resume:
            from .checkpoint import read_checkpoint

            read_checkpoint(args.resume)
        try:
            distributed.spawn(args.nproc, train_recipe_worker, recipe, args.out, kwargs)
        except RuntimeError as e:
            print(f"steport train: error: {e}", file=sys.stderr)
            return 1
        m = json.loads((Path(args.out) / f"{recipe['name']}.json").read_text())
        ckpt = Path(args.out) / f"{recipe['name']}.pt"
    else:
        ckpt, m = train_recipe(recipe, args.out, **kwargs)
        if not distributed.env_info().is_main:
            return 0
    print(f"{recipe['name']}: test accuracy {m['test_accuracy']:.4f} (best "
          f"{m['best_test_accuracy']:.4f}, {m['world_size']} process(es), "
          f"{m['train_seconds']:.1f}s); checkpoint {ckpt}")
    return 0
