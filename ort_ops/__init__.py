"""The ONNX Runtime custom-op library built from this folder (C++ kernels in core/, ORT
bindings in ort/, CUDA in cuda/). Load it with ``SessionOptions.register_custom_ops_library(
library_path())`` or use ``steport.session()``."""
from __future__ import annotations

import ctypes
import functools
import json
import os
import sysconfig
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_NAMES = {False: "libsteport_ops.so", True: "libsteport_ops_cuda.so"}


def library_path(cuda: bool = False) -> str:
    """Absolute path of ``libsteport_ops.so`` (or the CUDA variant with ``cuda=True``).

    ``STEPORT_OPS_LIBRARY`` overrides the CPU library (e.g. a sanitizer build)."""
    override = os.environ.get("STEPORT_OPS_LIBRARY_CUDA" if cuda else "STEPORT_OPS_LIBRARY")
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"steport op library override {override} does not exist")
        return override
    for folder in _search_dirs():
        path = folder / _NAMES[cuda]
        if path.is_file():
            return str(path)
    hint = ("it is built only where nvcc was found at install time" if cuda
            else "reinstall steport (pip install .) so CMake builds it")
    raise FileNotFoundError(f"{_NAMES[cuda]} not found in {_HERE}: {hint}")


def _search_dirs() -> list[Path]:
    # Installed wheel: next to this file. Editable install (scikit-build-core redirect):
    # this file is in the checkout while CMake installed the .so into site-packages.
    dirs = [_HERE, Path(sysconfig.get_paths()["platlib"]) / "steport" / "ort_ops"]
    return list(dict.fromkeys(dirs))


def has_cuda() -> bool:
    return any((d / _NAMES[True]).is_file() for d in _search_dirs())


@functools.lru_cache(maxsize=None)
def build_info(cuda: bool = False) -> dict:
    """What the library was built with and what this CPU runs: {"best_isa", "amx_int8",
    "cuda"}."""
    lib = ctypes.CDLL(library_path(cuda))
    lib.SteportBuildInfo.restype = ctypes.c_char_p
    return json.loads(lib.SteportBuildInfo().decode())


__all__ = ["library_path", "has_cuda", "build_info"]
