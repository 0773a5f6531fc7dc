"""Checks deploy/manifests/*.yaml against KServe's own model classes, strictly: every key must
be a field of the class KServe generated for that place (V1alpha1ServingRuntime,
V1beta1InferenceService and what they hold), and the Kubernetes core types inside
(V1ObjectMeta, V1Container, ...) must validate with the kubernetes client and survive a
round trip unchanged. Runs in its own process (tests/deploy/test_kserve.py): KServe's gRPC
modules cannot share a process with tritonclient.grpc.

    python tests/deploy/kserve_manifests.py RUNTIME.yaml INFERENCESERVICE.yaml"""
from __future__ import annotations

import re
import sys

import kubernetes.client
import yaml

import kserve

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def build(value, type_name: str, where: str):
    """The object KServe's classes make of `value` (a YAML node) for `type_name`."""
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        return [build(v, m.group(1), f"{where}[{i}]") for i, v in enumerate(value)]
    if m := re.fullmatch(r"dict\((\w+), (.+)\)", type_name):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping")
        return {k: build(v, m.group(2), f"{where}.{k}") for k, v in value.items()}
    if type_name in PRIMITIVES:
        if not isinstance(value, PRIMITIVES[type_name]) or (type_name == "int" and
                                                            isinstance(value, bool)):
            raise ValueError(f"{where}: {value!r} is not a {type_name}")
        return value
    klass = getattr(kserve.models, type_name, None)
    if klass is not None and hasattr(klass, "openapi_types"):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping for {type_name}")
        by_json = {v: k for k, v in klass.attribute_map.items()}
        unknown = sorted(set(value) - set(by_json))
        if unknown:
            raise ValueError(f"{where}: {type_name} has no field(s) {unknown}")
        kwargs = {by_json[k]: build(v, klass.openapi_types[by_json[k]], f"{where}.{k}")
                  for k, v in value.items()}
        return klass(**kwargs)  # client-side validation: required fields, enums
    core = getattr(kubernetes.client, type_name, None)
    if core is None:
        raise ValueError(f"{where}: no model class {type_name}")
    obj = core.from_dict(value)
    back = obj.model_dump(by_alias=True, exclude_none=True)
    if _normal(back) != _normal(value):
        raise ValueError(f"{where}: {type_name} does not keep {value} (got {back})")
    return obj


def _normal(v):
    """YAML scalars as Kubernetes would keep them (quantities and int-or-string as strings)."""
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def main(runtime_path: str, isvc_path: str) -> int:
    checks = [(runtime_path, "V1alpha1ServingRuntime", "ServingRuntime", "serving.kserve.io/v1alpha1"),
              (isvc_path, "V1beta1InferenceService", "InferenceService", "serving.kserve.io/v1beta1")]
    runtime_name = None
    for path, type_name, kind, api in checks:
        with open(path) as f:
            doc = yaml.safe_load(f)
        obj = build(doc, type_name, path)
        assert doc["kind"] == kind and doc["apiVersion"] == api, (path, doc["kind"], doc["apiVersion"])
        if kind == "ServingRuntime":
            runtime_name = obj.metadata.name
            formats = {f.name for f in obj.spec.supported_model_formats}
            args = obj.spec.containers[0].args
        else:
            model = obj.spec.predictor.model
            assert model.runtime == runtime_name, (model.runtime, runtime_name)
            assert model.model_format.name in formats, (model.model_format.name, formats)
        print(f"{path}: a valid {type_name}")
    assert args[:2] == ["serve", "/mnt/models"], args
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
