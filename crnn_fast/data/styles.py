"""What synthetic CAPTCHAs look like (``Style``) and how one is rendered: by the
``captcha`` package or the ``plain`` renderer (``plain.py``), drawing from a random
stream keyed by (seed, index)."""

import argparse
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import random
import string
import types
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import captcha
import captcha.image
import numpy as np
from PIL import ImageFont

from . import plain
from .dataset import _check_alphabet, _check_int, _check_path

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
RENDERERS = {
    "captcha": "the captcha package: warped, overlapping glyphs, noise dots and a curve (the reference task)",
    "plain": "whole characters drawn with Pillow, a little rotated, on a light noisy background, lines, dots, blur",
    "mixed": "each image drawn by one of the two at random",
}
"""The renderers ``Style`` and ``--renderer`` take."""


@dataclass(frozen=True)
class Style:
    """What synthetic CAPTCHAs look like. The default is the reference task: 5
    characters over ``ALPHABET``, 150x40, the ``captcha`` package's bundled fonts at
    ``FONT_SIZES``. Pretraining on a style close to your own images, then fine-tuning
    on a few of them (``train --init``), is one path for a new style (the README's
    fine-tuning curve measures it).

    ``alphabet``: a name from ``ALPHABETS`` or the characters themselves; ``length``:
    characters per label, an int or an inclusive (min, max) range, drawn uniformly;
    ``fonts``: TrueType/OpenType files (empty: the ``captcha`` package's bundled font);
    ``renderer``: a name from ``RENDERERS``."""

    alphabet: str = ALPHABET
    length: Union[int, tuple] = LENGTH
    height: int = HEIGHT
    width: int = WIDTH
    fonts: tuple = ()
    font_sizes: tuple = FONT_SIZES
    renderer: str = "captcha"

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
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {', '.join(RENDERERS)}, got {self.renderer!r}")

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
            **({} if self.renderer == "captcha" else {"renderer": self.renderer}),  # caches made before it match
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
        if style.renderer == "plain" or (style.renderer == "mixed" and rng.random() < 0.5):
            fonts = style.fonts or tuple(captcha.image.DEFAULT_FONTS)
            images[row] = plain.render(text, rng, style.width, style.height, fonts, style.font_sizes)
        else:
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
            # pop: a finished future holds its chunk until dropped, and a large set would
            # otherwise stay in memory whole (12 GB for 2M images) beside the cache it fills
            yield (futures.pop(future), *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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


STYLE_OPTIONS = ("alphabet", "length", "height", "width", "fonts", "font_sizes", "renderer")
"""The ``Style`` fields that ``add_style_arguments`` turns into command-line options."""


def add_style_arguments(parser: argparse.ArgumentParser, size_default: str = "") -> None:
    """--alphabet, --length, --height, --width, --fonts, --font-sizes, --renderer; unset options
    are None (``style_of`` then takes ``Style``'s defaults). ``size_default``: what the
    help says --height and --width default to, if not ``Style``'s; ``{}`` in it stands
    for ``Style``'s value."""
    names = ", ".join(ALPHABETS)
    parser.add_argument("--alphabet", help=f"a named alphabet ({names}) or the characters themselves "
                        "(default: alnum, the 62 of the reference task)")
    parser.add_argument("--length", help=f"characters per label: N or MIN-MAX, e.g. 4-6 (default: {LENGTH})")
    parser.add_argument("--height", type=_int_at_least(1), help=f"image height (default: {(size_default or '{}').format(HEIGHT)})")
    parser.add_argument("--width", type=_int_at_least(1), help=f"image width (default: {(size_default or '{}').format(WIDTH)})")
    parser.add_argument("--fonts", nargs="+", metavar="FONT", help="TrueType/OpenType files (default: the "
                        "captcha package's bundled fonts)")
    parser.add_argument("--font-sizes", nargs="+", type=_int_at_least(1), metavar="PX",
                        help=f"font sizes drawn from (default: {' '.join(map(str, FONT_SIZES))})")
    parser.add_argument("--renderer", choices=RENDERERS, help="what draws the synthetic images: "
                        + "; ".join(f"{k}: {v}" for k, v in RENDERERS.items()) + " (default: captcha)")


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
