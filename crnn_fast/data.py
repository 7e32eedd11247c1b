"""Datasets: reproducible synthetic CAPTCHAs cached as memory-mapped arrays, and folders of real images.

The reference task is 5 characters over ``ALPHABET`` (62 classes, case-sensitive), drawn
uniformly and rendered 150x40 by the ``captcha`` package. Every dataset, synthetic or
loaded from a folder, is a ``CaptchaDataset``: grayscale uint8 images (N, H, W) and
labels as indices into its alphabet, (N, Lmax) int16 padded with -1. The indices are
0-based and have no blank; the model adds the CTC blank.

Generate the training split's cache (the directory ``synthetic`` looks for) from the shell::

    python -m crnn_fast.data --n 100000 --seed 0 --out data/train-n100000-len5-seed0

A cache directory holds ``images.npy``, ``labels.npy``, ``lengths.npy`` and ``meta.json``.
It is written under a temporary sibling name and renamed into place when complete, so a
directory with the final name is always whole; a killed run leaves only a
``.<name>.partial-*`` directory, which nothing reads and which is safe to delete.
"""

import argparse
import contextlib
import csv
import functools
import hashlib
import json
import multiprocessing
import operator
import os
import random
import shutil
import string
import time
import types
import uuid
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import captcha
import captcha.image
import numpy as np
import PIL
from PIL import Image, ImageFont
from tqdm import tqdm

ALPHABETS = {
    "alnum": string.ascii_lowercase + string.ascii_uppercase + string.digits,  # the reference task's 62
    "letters": string.ascii_lowercase + string.ascii_uppercase,
    "lower+digits": string.ascii_lowercase + string.digits,
    "upper+digits": string.ascii_uppercase + string.digits,
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
}
"""Named alphabets for ``Style`` and ``--alphabet``."""
ALPHABET = ALPHABETS["alnum"]
LENGTH = 5
HEIGHT, WIDTH = 40, 150
FONT_SIZES = (26, 30, 34)

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
"""The seed of each synthetic split. Sample i of a split is drawn from a stream keyed by
(seed, i), so distinct seeds never share a stream and the splits are independent draws.
Changing these values changes every published number; add new splits with new seeds."""

FORMAT_VERSION = 1
ARRAY_FILES = ("images.npy", "labels.npy", "lengths.npy")
CACHE_FILES = (*ARRAY_FILES, "meta.json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LABELS_CSV = "labels.csv"
MAX_REPORTED = 10

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
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
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


# ---------------------------------------------------------------- synthetic CAPTCHAs


@dataclass(frozen=True)
class Style:
    """What synthetic CAPTCHAs look like. The default is the reference task: 5
    characters over ``ALPHABET``, 150x40, the ``captcha`` package's bundled fonts at
    ``FONT_SIZES``. Pretraining on a style close to your own images, then fine-tuning
    on a few of them (``train --init``), is the documented path for a new style.

    ``alphabet``: a name from ``ALPHABETS`` or the characters themselves; ``length``:
    characters per label, an int or an inclusive (min, max) range, drawn uniformly;
    ``fonts``: TrueType/OpenType files (empty: the bundled fonts)."""

    alphabet: str = ALPHABET
    length: Union[int, tuple] = LENGTH
    height: int = HEIGHT
    width: int = WIDTH
    fonts: tuple = ()
    font_sizes: tuple = FONT_SIZES

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalise once, here
        set_("alphabet", _check_alphabet(ALPHABETS.get(self.alphabet, self.alphabet)))
        lengths = (self.length, self.length) if isinstance(self.length, int) else tuple(self.length)
        if len(lengths) != 2:
            raise ValueError(f"length must be an int or a (min, max) pair, got {self.length!r}")
        lengths = tuple(_check_int(v, "length", 1) for v in lengths)
        if lengths[0] > lengths[1]:
            raise ValueError(f"length must be a (min, max) range with min <= max, got {self.length!r}")
        set_("length", lengths)
        _check_int(self.height, "height", 1)
        _check_int(self.width, "width", 1)
        set_("font_sizes", tuple(_check_int(v, "font_sizes", 1) for v in self.font_sizes))
        if not self.font_sizes:
            raise ValueError("font_sizes must not be empty")
        fonts = (self.fonts,) if isinstance(self.fonts, (str, os.PathLike)) else self.fonts
        set_("fonts", tuple(str(_check_path(f, "fonts")) for f in fonts))
        for font in self.fonts:
            try:
                ImageFont.truetype(font, self.font_sizes[0])
            except OSError as err:
                raise ValueError(f"fonts: cannot load {font} as a TrueType/OpenType font ({err})") from None

    def meta(self) -> dict:
        """The style as JSON-able facts, stored in every cache (fonts by name and hash)."""
        lo, hi = self.length
        return {
            "alphabet": self.alphabet,
            "length": lo if lo == hi else [lo, hi],
            "height": self.height,
            "width": self.width,
            "font_sizes": list(self.font_sizes),
            "fonts": [{"name": Path(f).name, "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()}
                      for f in self.fonts],
        }

    def key(self) -> str:
        """A cache-name fragment: ``len5`` for the default style, else the length and a
        hash of every option, so caches of different styles never share a name."""
        lo, hi = self.length
        name = f"len{lo}" if lo == hi else f"len{lo}-{hi}"
        if self == Style(length=self.length):
            return name
        digest = hashlib.sha256(json.dumps(self.meta(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{name}-{digest}"

    def text(self, rng: random.Random) -> str:
        lo, hi = self.length
        length = lo if lo == hi else rng.randint(lo, hi)  # a fixed length draws nothing: the reference stream
        return "".join(rng.choice(self.alphabet) for _ in range(length))


def parse_length(text: str) -> Union[int, tuple]:
    """``"5"`` -> 5, ``"4-6"`` -> (4, 6)."""
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else int(lo)
    except ValueError:
        raise ValueError(f"length must be N or MIN-MAX, got {text!r}") from None


@functools.cache
def _renderer(style: Style) -> captcha.image.ImageCaptcha:
    # One per process and style: it loads its fonts on first use.
    return captcha.image.ImageCaptcha(width=style.width, height=style.height, fonts=list(style.fonts) or None,
                                      font_sizes=style.font_sizes)


@contextlib.contextmanager
def _captcha_randomness(rng: random.Random):
    """Makes ``captcha.image`` draw from ``rng`` instead of ``secrets``.

    captcha draws every random choice from ``secrets`` (OS entropy, which cannot be
    seeded), through ``randbelow``, ``randbits`` and ``choice``; swapping the module it
    sees makes a rendering a function of ``rng`` alone without forking the library. A
    captcha release that calls anything else fails loudly here rather than silently
    going random. The swap is process-wide: do not render in several threads at once.
    """
    saved = captcha.image.secrets
    captcha.image.secrets = types.SimpleNamespace(randbelow=rng.randrange, randbits=rng.getrandbits, choice=rng.choice)
    try:
        yield
    finally:
        captcha.image.secrets = saved


def _sample_rng(seed: int, index: int) -> random.Random:
    # Child ``index`` of SeedSequence(seed), i.e. SeedSequence(seed).spawn(...)[index]:
    # unambiguous for every (seed, index) pair, and computable for any index alone.
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(4, np.uint64)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


def _render_range(seed: int, start: int, stop: int, style: Style) -> tuple[list[str], np.ndarray]:
    """Texts and (stop - start, H, W) uint8 images of samples [start, stop)."""
    texts, images = [], np.empty((stop - start, style.height, style.width), dtype=np.uint8)
    for row, index in enumerate(range(start, stop)):
        rng = _sample_rng(seed, index)
        text = style.text(rng)
        with _captcha_randomness(rng):
            images[row] = np.asarray(_renderer(style).generate_image(text).convert("L"))
        texts.append(text)
    return texts, images


def _rendered_chunks(seed: int, ranges: list[tuple[int, int]], style: Style, workers: int):
    """Yields (start, texts, images) for every range, in completion order."""
    if workers == 1:
        for start, stop in ranges:
            yield (start, *_render_range(seed, start, stop, style))
        return
    # spawn, not fork: the parent may hold threads (tqdm's monitor, torch's pools).
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(_render_range, seed, start, stop, style): start for start, stop in ranges}
        for future in as_completed(futures):
            yield (futures[future], *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_meta(directory: Path) -> dict:
    with open(directory / "meta.json", encoding="utf-8") as f:
        return json.load(f)


def generate(
    n: int,
    seed: int,
    out_dir: PathLike,
    *,
    style: Optional[Style] = None,
    workers: Optional[int] = None,
    progress: bool = True,
    start: int = 0,
    stop: Optional[int] = None,
) -> Path:
    """Renders samples [start, stop) of the ``n``-sample synthetic set ``seed`` into a cache at ``out_dir``.

    Sample i depends only on (seed, i) and the style, so the result is the same for any
    ``workers``, and caches of adjacent index ranges concatenate to the cache of their
    union: shard generation across processes or machines by ``start``/``stop``.

    Args:
        n: size of the whole set, >= 1.
        seed: non-negative int; the splits use ``SPLIT_SEEDS``.
        out_dir: the cache directory to create; it must not exist or be empty.
        style: what the CAPTCHAs look like (``Style``); ``None`` is the reference task's.
        workers: processes to render with; ``None`` uses ``os.cpu_count()``. More than one
            are started with ``spawn``, so a script must call this under
            ``if __name__ == "__main__":``.
        progress: show a tqdm progress bar.
        start, stop: the index range, 0 <= start < stop <= n; ``stop=None`` means ``n``.

    Returns:
        ``out_dir`` as a Path; read it with ``load``.
    """
    n = _check_int(n, "n", 1)
    seed = _check_int(seed, "seed", 0)
    out_dir = _check_path(out_dir, "out_dir")
    style = Style() if style is None else style
    if not isinstance(style, Style):
        raise TypeError(f"style must be a crnn_fast.data.Style, got {type(style).__name__}")
    workers = (os.cpu_count() or 1) if workers is None else _check_int(workers, "workers", 1)
    progress = _check_bool(progress, "progress")
    start = _check_int(start, "start", 0)
    stop = n if stop is None else _check_int(stop, "stop", 1)
    if not start < stop <= n:
        raise ValueError(f"start and stop must satisfy 0 <= start < stop <= n = {n}, got start={start}, stop={stop}")
    if out_dir.exists() and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise FileExistsError(f"out_dir {out_dir} already exists; delete it or choose another directory")

    count = stop - start
    chunk = max(1, min(256, -(-count // (4 * workers))))  # several chunks per worker balance the load
    ranges = [(a, min(a + chunk, stop)) for a in range(start, stop, chunk)]
    meta = {
        "format_version": FORMAT_VERSION,
        "n": n,
        "seed": seed,
        "start": start,
        "stop": stop,
        **style.meta(),
        "captcha_version": captcha.__version__,
        "pillow_version": PIL.__version__,
    }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        shape = (count, style.height, style.width)
        images = np.lib.format.open_memmap(partial / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        texts = [""] * count
        with tqdm(total=count, disable=not progress, unit="img", desc=f"seed {seed}") as bar:
            for first, chunk_texts, chunk_images in _rendered_chunks(seed, ranges, style, min(workers, len(ranges))):
                rows = slice(first - start, first - start + len(chunk_texts))
                images[rows], texts[rows] = chunk_images, chunk_texts
                bar.update(len(chunk_texts))
        images.flush()
        labels, lengths = _encode(texts, style.alphabet, width=style.length[1])
        np.save(partial / "labels.npy", labels)
        np.save(partial / "lengths.npy", lengths)
        with open(partial / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        try:
            os.replace(partial, out_dir)
        except OSError:
            # Another process finished the same cache first; its content equals ours.
            if not ((out_dir / "meta.json").is_file() and _read_meta(out_dir) == meta):
                raise
            shutil.rmtree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir


def merge(parts: list, out_dir: PathLike, *, remove: bool = False) -> Path:
    """Joins caches of adjacent index ranges of one synthetic set (``generate`` with
    ``start``/``stop``) into the cache of their union at ``out_dir``, written atomically;
    the parts must tile their range without gaps or overlaps, in any order. The result
    equals what one ``generate`` call over the union writes. ``remove`` deletes the parts
    afterwards."""
    if not parts:
        raise ValueError("parts must name at least one cache")
    parts = [_check_path(part, "parts") for part in parts]
    out_dir = _check_path(out_dir, "out_dir")
    metas = sorted(((_read_meta(part), part) for part in parts), key=lambda mp: mp[0]["start"])
    first = metas[0][0]

    def the_set(meta):  # what every part of one set shares: all but its range
        return {k: v for k, v in meta.items() if k not in ("start", "stop")}

    first_set, position = the_set(first), first["start"]
    for meta, part in metas:
        if the_set(meta) != first_set:
            raise ValueError(f"{part} belongs to another set than {metas[0][1]} (their meta.json differ)")
        if meta["start"] != position:
            raise ValueError(f"the parts do not tile a range: {part} starts at {meta['start']}, expected {position}")
        position = meta["stop"]
    if out_dir.exists():
        raise FileExistsError(f"out_dir {out_dir} already exists; delete it or choose another directory")
    meta = {**first, "stop": position}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        datasets = [load(part) for _, part in metas]
        images = np.lib.format.open_memmap(partial / "images.npy", mode="w+", dtype=np.uint8,
                                           shape=(position - first["start"], meta["height"], meta["width"]))
        row = 0
        for dataset in datasets:
            images[row : row + len(dataset)] = dataset.images
            row += len(dataset)
        images.flush()
        del images
        np.save(partial / "labels.npy", np.concatenate([d.labels for d in datasets]))
        np.save(partial / "lengths.npy", np.concatenate([d.lengths for d in datasets]))
        with open(partial / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if remove:
        for _, part in metas:
            shutil.rmtree(part)
    return out_dir


def generate_distributed(n: int, seed: int, out_dir: PathLike, *, style: Optional[Style] = None,
                         workers: Optional[int] = None, progress: bool = True) -> Path:
    """``generate`` shared by the processes of a ``torch.distributed`` group (every rank
    calls it): each renders its contiguous share of the ``n`` samples, then rank 0 joins
    the shares into ``out_dir``. ``out_dir`` must be on a filesystem all ranks see. The
    cache is the same for any number of processes; ``workers`` is per process (default:
    this machine's CPUs divided among its ranks)."""
    from . import distributed

    ctx = distributed.context()
    out_dir = _check_path(out_dir, "out_dir")
    if out_dir.exists():  # every rank sees it, so every rank stops here (no rank left waiting)
        raise FileExistsError(f"out_dir {out_dir} already exists; delete it or choose another directory")
    if workers is None:
        workers = max(1, (os.cpu_count() or 1) // ctx.local_world)
    parts_root = out_dir.parent / f".{out_dir.name}.parts-of-{ctx.world}"
    share = ctx.shard(n)
    part = parts_root / f"rank-{ctx.rank}"
    shutil.rmtree(part, ignore_errors=True)  # left by an interrupted run
    if len(share):
        generate(n, seed, part, style=style, workers=workers, progress=progress and ctx.main,
                 start=share.start, stop=share.stop)
    distributed.barrier()
    if ctx.main:
        shares = [parts_root / f"rank-{r}" for r in range(ctx.world)]
        merge([p for p in shares if (p / "meta.json").is_file()], out_dir, remove=True)
        shutil.rmtree(parts_root, ignore_errors=True)
    distributed.barrier()
    return out_dir


def load(directory: PathLike, mmap: bool = True) -> CaptchaDataset:
    """Opens a cache written by ``generate``; with ``mmap`` the arrays are read-only memory maps."""
    directory = _check_path(directory, "directory")
    mmap = _check_bool(mmap, "mmap")
    if not directory.is_dir():
        raise FileNotFoundError(f"no dataset cache at {directory}")
    missing = [name for name in CACHE_FILES if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"{directory} is not a complete dataset cache (missing {', '.join(missing)}); "
            "delete it and generate it again"
        )
    meta = _read_meta(directory)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{directory} has cache format {meta.get('format_version')}, this crnn_fast reads {FORMAT_VERSION}; "
            "generate it again"
        )
    mode = "r" if mmap else None
    images, labels, lengths = (np.load(directory / name, mmap_mode=mode) for name in ARRAY_FILES)
    count = meta["stop"] - meta["start"]
    expected = {
        "images": (count, meta["height"], meta["width"]),
        "labels": (count, max(np.atleast_1d(meta["length"]))),  # an int, or a [min, max] range
        "lengths": (count,),
    }
    for name, array in zip(expected, (images, labels, lengths)):
        if array.shape != expected[name]:
            raise ValueError(f"{directory}/{name}.npy has shape {array.shape}, meta.json says {expected[name]}")
    return CaptchaDataset(images, labels, lengths, meta["alphabet"])


def synthetic(
    root: PathLike,
    split: str,
    n: int,
    *,
    style: Optional[Style] = None,
    workers: Optional[int] = None,
    progress: bool = True,
) -> CaptchaDataset:
    """The ``n``-sample synthetic ``split`` (a key of ``SPLIT_SEEDS``) of ``style``
    (default: the reference task's), generated under ``root`` unless cached there. The
    cache's name holds the style's key, and a cache whose recorded style differs is
    refused, so caches of different styles never mix."""
    root = _check_path(root, "root")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    n = _check_int(n, "n", 1)
    style = Style() if style is None else style
    seed = SPLIT_SEEDS[split]
    directory = root / f"{split}-n{n}-{style.key()}-seed{seed}"
    if not (directory / "meta.json").is_file():
        from . import distributed

        if distributed.context().world > 1:  # under torchrun: every rank renders a share
            generate_distributed(n, seed, directory, style=style, workers=workers, progress=progress)
        else:
            generate(n, seed, directory, style=style, workers=workers, progress=progress)
    expected, meta = style.meta(), _read_meta(directory)
    if {k: meta.get(k, []) for k in expected} != expected:  # caches made before fonts were recorded: []
        raise ValueError(f"{directory} holds CAPTCHAs of another style than the one asked for; delete it")
    return load(directory)


# ---------------------------------------------------------------- folders of real images


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


# ---------------------------------------------------------------- command line


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


STYLE_OPTIONS = ("alphabet", "length", "height", "width", "fonts", "font_sizes")
"""The ``Style`` fields that ``add_style_arguments`` turns into command-line options."""


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    """--alphabet, --length, --height, --width, --fonts, --font-sizes; unset options
    are None (``style_of`` then takes ``Style``'s defaults)."""
    names = ", ".join(ALPHABETS)
    parser.add_argument("--alphabet", help=f"a named alphabet ({names}) or the characters themselves "
                        "(default: alnum, the 62 of the reference task)")
    parser.add_argument("--length", help=f"characters per label: N or MIN-MAX, e.g. 4-6 (default: {LENGTH})")
    parser.add_argument("--height", type=_int_at_least(1), help=f"image height (default: {HEIGHT})")
    parser.add_argument("--width", type=_int_at_least(1), help=f"image width (default: {WIDTH})")
    parser.add_argument("--fonts", nargs="+", metavar="FONT", help="TrueType/OpenType files (default: the "
                        "captcha package's bundled fonts)")
    parser.add_argument("--font-sizes", nargs="+", type=_int_at_least(1), metavar="PX",
                        help=f"font sizes drawn from (default: {' '.join(map(str, FONT_SIZES))})")


def style_of(options) -> Style:
    """The ``Style`` of an object with the ``STYLE_OPTIONS`` attributes (parsed
    arguments, a training config), None meaning the default; ``length`` may be a string
    (``"4-6"``). Raises ValueError naming a bad option."""
    given = {k: getattr(options, k) for k in STYLE_OPTIONS if getattr(options, k, None) is not None}
    if isinstance(given.get("length"), str):
        given["length"] = parse_length(given["length"])
    for key in ("fonts", "font_sizes"):
        if key in given:
            given[key] = tuple(given[key])
    return Style(**given)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crnn_fast.data",
        description="Render a reproducible synthetic CAPTCHA set into a memory-mappable cache directory.",
    )
    # --size: the same, for torchrun, whose own parser rejects "--n" as ambiguous
    parser.add_argument("--n", "--size", dest="n", type=_int_at_least(1), required=True, help="size of the whole set")
    parser.add_argument("--seed", type=_int_at_least(0), required=True, help=f"set seed; the splits use {SPLIT_SEEDS}")
    parser.add_argument("--out", required=True, help="cache directory to create")
    parser.add_argument("--workers", type=_int_at_least(1), help="processes (default: all CPUs)")
    add_style_arguments(parser)
    parser.add_argument("--start", type=_int_at_least(0), default=0, help="first index to render (for sharding)")
    parser.add_argument("--stop", type=_int_at_least(1), help="index to stop before (default: n)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    try:
        style = style_of(args)
    except (ValueError, TypeError) as err:
        parser.error(str(err))

    began = time.perf_counter()
    from . import distributed

    if distributed.launched():  # torchrun: the processes share the work
        if args.start != 0 or args.stop is not None:
            parser.error("--start/--stop shard by hand; under torchrun the processes share the range themselves")
        ctx, _ = distributed.init("cpu")
        try:
            out = generate_distributed(args.n, args.seed, args.out, style=style, workers=args.workers,
                                       progress=not args.no_progress)
        except (ValueError, FileExistsError) as err:
            parser.error(str(err))
        finally:
            distributed.close()
        if ctx.main:
            print(f"wrote {args.n} images to {out} in {time.perf_counter() - began:.1f} s ({ctx.world} processes)")
        return
    try:
        out = generate(
            args.n, args.seed, args.out, style=style, workers=args.workers,
            progress=not args.no_progress, start=args.start, stop=args.stop,
        )
    except (ValueError, FileExistsError) as err:
        parser.error(str(err))
    count = (args.n if args.stop is None else args.stop) - args.start
    print(f"wrote {count} images to {out} in {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
