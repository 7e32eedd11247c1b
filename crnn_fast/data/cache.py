"""Synthetic splits cached as memory-mapped arrays: ``generate`` renders one (in
worker processes, or sharded over processes and machines), ``merge`` joins shards,
``load`` opens one and ``synthetic`` returns a split, generating it on first use.

A cache directory holds ``images.npy``, ``labels.npy``, ``lengths.npy`` and ``meta.json``.
It is written under a temporary sibling name and renamed into place when complete, so a
directory with the final name is always whole; a killed run leaves only a
``.<name>.partial-*`` directory, which nothing reads and which is safe to delete."""

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Optional

import captcha
import numpy as np
import PIL
from tqdm import tqdm

from .dataset import CaptchaDataset, PathLike, _check_bool, _check_int, _check_path, _encode
from .styles import Style, _rendered_chunks

SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
"""The seed of each synthetic split. Sample i of a split is drawn from a stream keyed by
(seed, i), so distinct seeds never share a stream and the splits are independent draws.
Changing these values changes every published number; add new splits with new seeds."""

FORMAT_VERSION = 1
ARRAY_FILES = ("images.npy", "labels.npy", "lengths.npy")
CACHE_FILES = (*ARRAY_FILES, "meta.json")
# What a cache holds for a style field its meta.json does not record: caches made before
# fonts were recorded used the bundled ones, and Style.meta() records the renderer only
# when it is not the default (so that those caches still match).
_UNRECORDED = {"fonts": [], "renderer": "captcha"}


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
    from .. import distributed

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
        from .. import distributed

        if distributed.context().world > 1:  # under torchrun: every rank renders a share
            generate_distributed(n, seed, directory, style=style, workers=workers, progress=progress)
        else:
            generate(n, seed, directory, style=style, workers=workers, progress=progress)
    expected, meta = {**_UNRECORDED, **style.meta()}, _read_meta(directory)
    if {k: meta.get(k, _UNRECORDED.get(k)) for k in expected} != expected:
        raise ValueError(f"{directory} holds CAPTCHAs of another style than the one asked for; delete it")
    return load(directory)
