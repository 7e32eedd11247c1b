"""Datasets: reproducible synthetic CAPTCHAs cached as memory-mapped arrays, and folders of real images.

The reference task is 5 characters over ``ALPHABET`` (62 classes, case-sensitive), drawn
uniformly and rendered 150x40 by the ``captcha`` package. Every dataset, synthetic or
loaded from a folder, is a ``CaptchaDataset``: grayscale uint8 images (N, H, W) and
labels as indices into its alphabet, (N, Lmax) int16 padded with -1. The indices are
0-based and have no blank; the model adds the CTC blank.

Generate the training split's cache (the directory ``synthetic`` looks for) from the shell::

    python -m crnn_fast.data --n 100000 --seed 0 --out data/train-n100000-len5-seed0

The modules: ``dataset`` (``CaptchaDataset``, ``split``), ``styles`` (``Style`` and
rendering), ``plain`` (the ``plain`` renderer), ``cache`` (``generate``, ``merge``,
``load``, ``synthetic``), ``folders`` (``load_folder``) and ``cli`` (``python -m
crnn_fast.data``); everything public is importable from ``crnn_fast.data`` itself.
"""

from .cache import (ARRAY_FILES, CACHE_FILES, FORMAT_VERSION, SPLIT_SEEDS, generate, generate_distributed, load,
                    merge, synthetic)
from .cli import main
from .dataset import CaptchaDataset, PathLike, split
from .folders import IMAGE_SUFFIXES, LABELS_CSV, folder_image_sizes, load_folder, read_image
from .styles import (ALPHABET, ALPHABETS, FONT_SIZES, HEIGHT, LENGTH, RENDERERS, STYLE_OPTIONS, WIDTH, Style,
                     add_style_arguments, parse_length, style_of)

__all__ = [
    "ALPHABET", "ALPHABETS", "ARRAY_FILES", "CACHE_FILES", "FONT_SIZES", "FORMAT_VERSION", "HEIGHT", "IMAGE_SUFFIXES",
    "LABELS_CSV", "LENGTH", "RENDERERS", "SPLIT_SEEDS", "STYLE_OPTIONS", "WIDTH", "CaptchaDataset", "PathLike", "Style",
    "add_style_arguments", "folder_image_sizes", "generate", "generate_distributed", "load", "load_folder", "main",
    "merge", "parse_length", "read_image", "split", "style_of", "synthetic",
]
