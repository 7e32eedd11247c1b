"""Folders of labelled images: ``load_folder`` reads one into a ``CaptchaDataset``."""

import csv
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from .dataset import CaptchaDataset, PathLike, _check_alphabet, _check_bool, _check_int, _check_path, _encode
from .styles import HEIGHT, WIDTH

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LABELS_CSV = "labels.csv"
MAX_REPORTED = 10


def read_image(path: Path, height: int, width: int) -> np.ndarray:
    """One image file as (height, width) uint8 grayscale, whatever its size and mode."""
    with Image.open(path) as image:
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            # convert("L") clips these to 255 rather than scaling: stretch to 8 bits instead.
            values = np.asarray(image, dtype=np.float64)
            low, high = values.min(), values.max()
            gray = Image.fromarray(np.round((values - low) * (255 / max(high - low, 1e-12))).astype(np.uint8))
        elif image.has_transparency_data:
            # Dropping alpha would expose whatever colour transparent pixels hold (often black).
            gray = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA")).convert("L")
        else:
            gray = image.convert("L")
    if gray.size != (width, height):
        gray = gray.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(gray)


def _folder_entries(folder: Path) -> list[tuple[str, str]]:
    """(file name, label) pairs: from labels.csv when present, else every image file with its stem."""
    csv_path = folder / LABELS_CSV
    if not csv_path.is_file():
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return [(p.name, p.stem) for p in images]
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{csv_path} must have a header row with columns filename,label; got {reader.fieldnames}")
        entries = [(row["filename"] or "", row["label"] or "") for row in reader]
    if any(not name for name, _ in entries):
        raise ValueError(f"{csv_path} has a row with an empty filename")
    return entries


def load_folder(
    path: PathLike,
    alphabet: Optional[str] = None,
    height: int = HEIGHT,
    width: int = WIDTH,
    skip_bad: bool = False,
) -> CaptchaDataset:
    """Loads a folder of labelled images (in memory) as a ``CaptchaDataset``.

    Labels come from ``labels.csv`` (columns ``filename,label``; names relative to the
    folder; files it does not list are ignored) when the folder has one, else from the
    file stems of its images (``aB3xZ.png`` is labelled ``aB3xZ``). Labels may have any
    length. Images of any size and mode are made grayscale (transparency over white,
    16-bit and float images stretched to 0..255) and resized to (height, width).

    Args:
        path: the folder.
        alphabet: the label characters, in class-index order; ``None`` takes the sorted
            set of characters in the labels.
        height, width: output image size, >= 1.
        skip_bad: leave out unreadable images, empty labels and labels with characters
            outside ``alphabet`` (counted in ``.skipped`` and warned) instead of raising a
            ValueError that names them.
    """
    folder = _check_path(path, "path")
    if alphabet is not None:
        _check_alphabet(alphabet)
    height = _check_int(height, "height", 1)
    width = _check_int(width, "width", 1)
    skip_bad = _check_bool(skip_bad, "skip_bad")
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at {folder}")
    entries = _folder_entries(folder)
    if not entries:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no {LABELS_CSV}")

    images, texts, problems = [], [], []
    for name, text in entries:
        unknown = "" if alphabet is None else "".join(sorted(set(text) - set(alphabet)))
        if not text:
            problems.append(f"{name}: empty label")
        elif unknown:
            problems.append(f"{name}: label {text!r} has characters not in the alphabet: {unknown!r}")
        else:
            try:
                images.append(read_image(folder / name, height, width))
                texts.append(text)
            except Exception as err:  # Pillow signals corrupt files with many exception types
                problems.append(f"{name}: cannot read image ({type(err).__name__}: {err})")

    if problems:
        listed = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        summary = f"{len(problems)} of {len(entries)} files in {folder} are unusable:\n  {listed}{more}"
        if not skip_bad:
            raise ValueError(f"{summary}\n(pass skip_bad=True to skip them)")
        if not images:
            raise ValueError(f"{summary}\nno usable images are left")
        warnings.warn(f"{summary}\nskipped them (skip_bad=True)", stacklevel=2)
    alphabet = alphabet if alphabet is not None else _check_alphabet("".join(sorted(set("".join(texts)))))
    labels, lengths = _encode(texts, alphabet)
    return CaptchaDataset(np.stack(images), labels, lengths, alphabet, skipped=len(problems))


def folder_image_sizes(path: PathLike) -> Counter:
    """How many images of a folder have each (height, width), read from the files'
    headers, in the order the folder lists them. Raises ValueError naming a file that
    cannot be opened."""
    folder = _check_path(path, "path")
    if not folder.is_dir():
        raise FileNotFoundError(f"no image folder at {folder}")
    sizes = Counter()
    for name, _ in _folder_entries(folder):
        try:
            with Image.open(folder / name) as image:
                sizes[image.size[::-1]] += 1
        except Exception as err:  # Pillow signals corrupt files with many exception types
            raise ValueError(f"{folder / name}: cannot read image ({type(err).__name__}: {err})") from None
    if not sizes:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no {LABELS_CSV}")
    return sizes
