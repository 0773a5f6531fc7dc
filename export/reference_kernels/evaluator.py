"""The numpy reference kernels as ``onnx.reference`` ops: one ``OpRun`` class per registry op,
so ``onnx.reference.ReferenceEvaluator`` runs a steport model on these kernels instead of its
fallback bodies. ``reference_evaluator(model)`` does it: it drops the steport model-local
functions first (onnx.reference builds every function of a model, and would refuse bodies
it cannot run, e.g. DequantizeLinear below opset 19, even where a new op replaces them)."""
from __future__ import annotations

import copy
from typing import Any

import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from steport.registry import DOMAINS, OPS, OpSpec

from .kernels import kernel_for


def _op_class(spec: OpSpec) -> type[OpRun]:
    defaults = {a.name: a.default for a in spec.attrs if not a.required}

    def _run(self, *inputs, **attrs):
        # onnx.reference passes the attributes present on the node; fill the registry's
        # defaults, and None for optional inputs the node omits at the end
        args = list(inputs) + [None] * (len(spec.inputs) - len(inputs))
        out = kernel_for(spec.domain, spec.name).fn(*args, **{**defaults, **attrs})
        return out if isinstance(out, tuple) else (out,)

    return type(spec.name, (OpRun,), {"op_domain": spec.domain, "_run": _run,
                                      "__doc__": f"{spec.qualname} on its numpy kernel."})


_CLASSES: tuple[type[OpRun], ...] = tuple(_op_class(spec) for spec in OPS)


def reference_ops() -> list[type[OpRun]]:
    """The ``new_ops`` for ``ReferenceEvaluator``: every registry op on its numpy kernel."""
    return list(_CLASSES)


def reference_evaluator(model: onnx.ModelProto, **kwargs: Any) -> ReferenceEvaluator:
    """A ReferenceEvaluator running ``model``'s steport nodes on the numpy kernels (the model
    is copied without its steport functions; other functions and ops run as onnx.reference
    runs them). ``kwargs`` go to ReferenceEvaluator (``new_ops`` are added to ours)."""
    ours = set(DOMAINS.values())
    bare = copy.deepcopy(model)
    keep = [f for f in bare.functions if f.domain not in ours]
    del bare.functions[:]
    bare.functions.extend(keep)
    new_ops = [*reference_ops(), *kwargs.pop("new_ops", [])]
    return ReferenceEvaluator(bare, new_ops=new_ops, **kwargs)
