"""steport.export: PyTorch models -> ONNX with steport custom domains.

``export_model(model, example_inputs, path)`` maps every steport op to its custom-domain
node (``ai.steport.*``), adds a model-local fallback body per op, and checks the result."""
from .core import ExportError, add_fallback_functions, export_model, finalize, save, translation_table

__all__ = ["ExportError", "export_model", "finalize", "add_fallback_functions", "save",
           "translation_table"]
