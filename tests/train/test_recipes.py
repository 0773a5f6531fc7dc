"""Recipe validation: every mistake gives a RecipeError naming the problem."""
from __future__ import annotations

import pytest

from steport.train.recipes import RecipeError, load_recipe, recipe_names


def write(tmp_path, text: str):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


GOOD = """
name: r
model: {arch: float_cnn, kwargs: {width: 4}}
data: {name: digits}
train: {epochs: 1, batch_size: 32}
"""


def test_builtin_recipes_load():
    names = recipe_names()
    assert {"float_cnn", "pact_cnn"} <= set(names)
    for n in names:
        r = load_recipe(n)
        assert r["name"] and r["model"]["arch"] and r["data"]["name"]


def test_good_recipe(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r["model"]["kwargs"] == {"width": 4} and r["data"]["kwargs"] == {}
    assert r["export"] == {}
    assert load_recipe("pact_cnn")["export"] == {"integer": True}


@pytest.mark.parametrize("text, match", [
    (GOOD + "bogus: 1\n", r"unknown key\(s\) \['bogus'\]"),
    (GOOD.replace("train: {", "train: {warmup: 3, "), r"unknown key\(s\) \['warmup'\] in .* train"),
    (GOOD.replace("data: {name: digits}", "data: {name: digits, root: x}"),
     r"unknown key\(s\) \['root'\] in .* data"),
    ("name: r\nmodel: {arch: float_cnn}\n", "'data' section is required"),
    (GOOD.replace("float_cnn", "resnet9000"), "unknown model arch 'resnet9000'"),
    (GOOD.replace("digits", "imagenet"), "unknown dataset 'imagenet'"),
    (GOOD.replace("epochs: 1", "epochs: 0"), "train.epochs must be a positive int"),
    (GOOD.replace("epochs: 1", "optimizer: lion"), "unknown train.optimizer 'lion'"),
    (GOOD + "export: {integer: yes please}\n", "export.integer must be true or false"),
    (GOOD + "export: {opset: 21}\n", r"unknown key\(s\) \['opset'\] in .* export"),
    (GOOD + "export: [integer]\n", "'export' must be a mapping"),
    ("[1, 2]", "a recipe is a mapping"),
    ("model: {arch: [", "not valid YAML"),
])
def test_bad_recipes(tmp_path, text, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe(write(tmp_path, text))


def test_unknown_recipe_name(tmp_path):
    with pytest.raises(RecipeError, match="unknown recipe 'nope'"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
