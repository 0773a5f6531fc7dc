"""steport.export: PyTorch models -> ONNX with steport custom domains.

``export_model(model, example_inputs, path)`` maps every steport op to its custom-domain
node (``ai.steport.*``), adds a model-local fallback body per op, and checks the result.
Names are resolved lazily so torch-free users (the server, ``preprocess``) can import
submodules without torch."""
from __future__ import annotations

import importlib

__all__ = ["ExportError", "export_model", "finalize", "add_fallback_functions", "save",
           "translation_table"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".core", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
