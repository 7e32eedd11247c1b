"""``CaptchaDataset``, the in-memory form of every split, and the argument checks the
data modules share."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._checks import as_int

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True, eq=False)
class CaptchaDataset:
    """Images and labels of one split, in memory or memory-mapped."""

    images: np.ndarray
    """(N, H, W) uint8 grayscale."""
    labels: np.ndarray
    """(N, Lmax) integer indices into ``alphabet``, each row padded with -1 after its length."""
    lengths: np.ndarray
    """(N,) integer label lengths."""
    alphabet: str
    skipped: int = 0
    """Files ``load_folder(..., skip_bad=True)`` left out."""

    def __post_init__(self):
        _check_alphabet(self.alphabet)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be a (N, H, W) uint8 array, got {self.images.dtype} {self.images.shape}")
        n = len(self.images)
        if self.labels.ndim != 2 or len(self.labels) != n or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(f"labels must be a ({n}, Lmax) integer array, got {self.labels.dtype} {self.labels.shape}")
        if self.lengths.shape != (n,) or not np.issubdtype(self.lengths.dtype, np.integer):
            raise ValueError(f"lengths must be a ({n},) integer array, got {self.lengths.dtype} {self.lengths.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def text(self, i: int) -> str:
        """The label of sample ``i`` as a string."""
        return "".join(self.alphabet[c] for c in self.labels[i, : self.lengths[i]])

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(len(self))]

    def subset(self, indices) -> "CaptchaDataset":
        """The samples at ``indices`` (an integer array), copied into memory."""
        indices = np.asarray(indices)
        return CaptchaDataset(self.images[indices], self.labels[indices], self.lengths[indices], self.alphabet)


def split(dataset: CaptchaDataset, fraction: float, parts: int, seed: int) -> list[CaptchaDataset]:
    """Splits ``parts`` held-out sets of ``fraction`` of ``dataset`` each (at least one
    sample each) off a random permutation drawn from ``seed``; returns [rest, *held].
    The same (dataset, fraction, parts, seed) always gives the same split."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    held = max(1, round(fraction * len(dataset)))
    if len(dataset) - parts * held < 1:
        raise ValueError(f"{len(dataset)} samples are too few to hold out {parts} x {held} ({fraction:.0%} each) "
                         "and keep some to train on")
    order = np.random.default_rng(seed).permutation(len(dataset))
    cuts = [len(dataset) - parts * held + k * held for k in range(parts + 1)]
    return [dataset.subset(np.sort(order[a:b])) for a, b in zip([0, *cuts], cuts)]


def _check_int(value, name: str, minimum: int) -> int:
    value = as_int(value, name)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _check_path(value, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    return Path(value)


def _check_alphabet(alphabet) -> str:
    if not isinstance(alphabet, str):
        raise TypeError(f"alphabet must be a str, got {type(alphabet).__name__}")
    if not alphabet:
        raise ValueError("alphabet must not be empty")
    if len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet must not repeat characters, got {alphabet!r}")
    if len(alphabet) > np.iinfo(np.int16).max:
        raise ValueError(f"alphabet has {len(alphabet)} characters, more than int16 labels can index")
    return alphabet


def _encode(texts: list[str], alphabet: str, width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N, width) int16 padded with -1 (width: the longest text's length by
    default) and lengths (N,) int16; every character must be in ``alphabet``."""
    index = {c: i for i, c in enumerate(alphabet)}
    lengths = np.array([len(t) for t in texts], dtype=np.int16)
    width = int(lengths.max(initial=0)) if width is None else width
    labels = np.full((len(texts), width), -1, dtype=np.int16)
    for row, text in zip(labels, texts):
        row[: len(text)] = [index[c] for c in text]
    return labels, lengths
