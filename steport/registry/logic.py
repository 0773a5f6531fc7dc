"""ai.steport.logic ops (see docs/ops.md)."""
from .spec import Attr, OpSpec, Port  # noqa: F401

OPS: list[OpSpec] = []
