"""Errors that more than one stage raises or catches, in one module that imports nothing of
steport, so any layer can use them without depending on another (train's layers raise
ExportError from their export hooks; export catches AllocationRefused from train's memory
guard; the pipeline reports CheckpointError). The stages re-export them from their old
places (``steport.export.ExportError``, ``steport.train.checkpoint.CheckpointError``,
``steport.train.alloc_guard.AllocationRefused``): the classes are the same objects."""
from __future__ import annotations


class ExportError(RuntimeError):
    """A model or layer configuration steport cannot export faithfully."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, not steport's, or does not fit the model or recipe."""


class AllocationRefused(ValueError):
    """A tensor allocation above the memory budget (steport.train.alloc_guard), refused
    before it is attempted."""


__all__ = ["ExportError", "CheckpointError", "AllocationRefused"]
