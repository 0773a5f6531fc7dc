"""Recipes: YAML files naming a model, a data set and training settings. The CLI accepts a
recipe name (a file in this folder) or a path."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_TOP_KEYS = {"name", "family", "model", "data", "train", "export", "description", "init_from"}
_MODEL_KEYS = {"arch", "kwargs"}
_DATA_KEYS = {"name", "kwargs"}
# export.integer: deploy as a standard-ONNX integer network (QLinearConv/QGemm; docs/ops.md
# "Integer models") instead of float layers with custom-domain quantizer nodes
_EXPORT_KEYS = {"integer"}


class RecipeError(ValueError):
    pass


def recipe_names() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.yaml"))


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise RecipeError(f"recipe file {p} does not exist")
        return p
    q = _HERE / f"{name_or_path}.yaml"
    if not q.is_file():
        raise RecipeError(f"unknown recipe {name_or_path!r}; built-in: {recipe_names()}")
    return q


def _unknown(where: str, got: dict, allowed: set[str]) -> None:
    extra = set(got) - allowed
    if extra:
        raise RecipeError(f"unknown key(s) {sorted(extra)} in {where}; allowed: {sorted(allowed)}")


def load_recipe(name_or_path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    from ..data import canonical_dataset_name, dataset_names
    from ..loop import FitConfig
    from ..models import model_names

    path = recipe_path(name_or_path)
    try:
        r = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(r, dict):
        raise RecipeError(f"{path}: a recipe is a mapping, got {type(r).__name__}")
    _unknown(f"{path}", r, _TOP_KEYS)
    for key in ("model", "data"):
        if not isinstance(r.get(key), dict):
            raise RecipeError(f"{path}: '{key}' section is required")
    _unknown(f"{path} model", r["model"], _MODEL_KEYS)
    _unknown(f"{path} data", r["data"], _DATA_KEYS)
    export = r.setdefault("export", {}) or {}
    if not isinstance(export, dict):
        raise RecipeError(f"{path}: 'export' must be a mapping")
    _unknown(f"{path} export", export, _EXPORT_KEYS)
    if not isinstance(export.get("integer", False), bool):
        raise RecipeError(f"{path}: export.integer must be true or false")
    r["export"] = export
    if r["model"].get("arch") not in model_names():
        raise RecipeError(f"{path}: unknown model arch {r['model'].get('arch')!r}; "
                          f"known: {model_names()}")
    r["data"]["name"] = canonical_dataset_name(r["data"].get("name"))
    if r["data"]["name"] not in dataset_names():
        raise RecipeError(f"{path}: unknown dataset {r['data'].get('name')!r}; "
                          f"known: {dataset_names()}")
    for sec in ("model", "data"):
        if not isinstance(r[sec].setdefault("kwargs", {}) or {}, dict):
            raise RecipeError(f"{path}: {sec}.kwargs must be a mapping")
        r[sec]["kwargs"] = r[sec]["kwargs"] or {}
    train = r.get("train") or {}
    if not isinstance(train, dict):
        raise RecipeError(f"{path}: 'train' must be a mapping")
    fit_keys = {f.name for f in dataclasses.fields(FitConfig)}
    _unknown(f"{path} train", train, fit_keys)
    try:
        FitConfig(**train).validate()
    except ValueError as e:
        raise RecipeError(f"{path}: {e}") from None
    r["train"] = train
    init = r.get("init_from")
    if init is not None and (not isinstance(init, str) or not init):
        raise RecipeError(f"{path}: init_from must be a recipe name or a checkpoint path")
    r.setdefault("name", path.stem)
    if not isinstance(r["name"], str) or not r["name"] or "/" in r["name"]:
        raise RecipeError(f"{path}: name must be a non-empty string without '/'")
    return r
