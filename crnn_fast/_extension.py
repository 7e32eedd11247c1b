"""Loads the compiled kernels and explains what to do when they cannot load."""

import importlib
import os

import torch

from .version import __version__

MIN_TORCH = (2, 10)
REINSTALL = "pip install --force-reinstall --no-deps --no-build-isolation crnn_fast  (or `pip install .` in a source checkout)"


def build_info():
    """What setup.py compiled, or None for a source tree that was never built."""
    try:
        return importlib.import_module("crnn_fast._build_info").BUILD_INFO
    except ImportError:
        return None


def _load():
    torch_version = torch.__version__.split("+")[0]
    if tuple(int(x) for x in torch_version.split(".")[:2]) < MIN_TORCH:
        raise ImportError(
            f"crnn_fast {__version__} needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} (its kernels use the LibTorch "
            f"stable ABI of that release), but torch {torch.__version__} is installed. "
            f"Fix: pip install 'torch>={MIN_TORCH[0]}.{MIN_TORCH[1]}'"
        )
    try:
        importlib.import_module("crnn_fast._C")
    except ModuleNotFoundError as err:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        raise ImportError(
            f"crnn_fast's compiled kernels (crnn_fast._C) are missing from the source tree at {here}. "
            "Fix: build it in place with `pip install -e .` there, or, if crnn_fast is installed elsewhere, "
            "run from another directory so this checkout does not shadow the installed package."
        ) from err
    except (ImportError, OSError) as err:
        built = (build_info() or {}).get("built_with_torch", "an unknown torch")
        raise ImportError(
            f"crnn_fast's compiled kernels failed to load against torch {torch.__version__} (they were built with "
            f"torch {built}); this is an ABI mismatch between the build and the running torch. "
            f"Fix: rebuild against the torch you run: {REINSTALL}. Loader said: {err}"
        ) from err


_load()
