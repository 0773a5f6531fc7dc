"""`steport train` and `steport demo`."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a recipe (name or YAML path); writes a checkpoint")
    p.add_argument("recipe")
    p.add_argument("-o", "--out", default="runs", help="output folder (checkpoint, metrics)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="cpu or cuda")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="the main job: train, export, verify and report")
    p.add_argument("-o", "--out", default="reports/demo")
    p.add_argument("--epochs", type=int, help="override every recipe's epochs")
    p.add_argument("--recipes", nargs="*", help="subset of recipes (default: all)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def train_recipe(recipe: dict, out_dir: str | os.PathLike, *, epochs: int | None = None,
                 seed: int | None = None, device: str | None = None, deterministic: bool = False,
                 progress: bool = True) -> tuple[Path, dict]:
    """Train one recipe; writes OUT/<name>.pt (checkpoint) and OUT/<name>.json (metrics)."""
    from .checkpoint import save_checkpoint
    from .data import load_dataset
    from .loop import FitConfig, fit
    from .models import build_model, count_parameters

    cfg = FitConfig(**recipe["train"])
    if epochs is not None:
        cfg.epochs = epochs
    if seed is not None:
        cfg.seed = seed
    if device:
        cfg.device = device
    cfg.deterministic = cfg.deterministic or deterministic
    cfg.progress = progress
    data = load_dataset(recipe["data"]["name"], **recipe["data"]["kwargs"])
    from .loop import seed_everything

    seed_everything(cfg.seed, cfg.deterministic)
    model = build_model(recipe["model"]["arch"], num_classes=data.num_classes,
                        in_channels=data.input_shape[0], **recipe["model"]["kwargs"])
    result = fit(model, data, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / f"{recipe['name']}.pt"
    metrics = {"recipe": recipe["name"], "test_accuracy": result.test_accuracy,
               "epochs": cfg.epochs, "train_seconds": result.seconds,
               "parameters": count_parameters(model), "history": result.history}
    kwargs = dict(recipe["model"]["kwargs"], num_classes=data.num_classes,
                  in_channels=data.input_shape[0])
    save_checkpoint(ckpt, model.cpu(), arch=recipe["model"]["arch"], kwargs=kwargs,
                    input_shape=data.input_shape, dataset=data.name, metrics=metrics)
    (out / f"{recipe['name']}.json").write_text(json.dumps(metrics, indent=2))
    return ckpt, metrics


def cmd_train(args) -> int:
    from .recipes import load_recipe

    recipe = load_recipe(args.recipe)
    ckpt, m = train_recipe(recipe, args.out, epochs=args.epochs, seed=args.seed,
                           device=args.device, deterministic=args.deterministic,
                           progress=not args.no_progress)
    print(f"{recipe['name']}: test accuracy {m['test_accuracy']:.4f} "
          f"({m['train_seconds']:.1f}s); checkpoint {ckpt}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out, recipes=args.recipes, epochs=args.epochs,
                    progress=not args.no_progress)
