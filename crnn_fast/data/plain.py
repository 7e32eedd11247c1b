"""The ``plain`` renderer: text drawn with Pillow, the way many sites draw their CAPTCHAs
and unlike the ``captcha`` package's warped, overlapping glyphs: whole characters in
one font, each a little rotated and shifted, on a light noisy background, with a few
lines or curves drawn through them, dots, and blur. Every choice is drawn from the
sample's random stream, so a rendering is a function of (seed, index, style)."""

import functools
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont


@functools.cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _glyph(char: str, font: ImageFont.FreeTypeFont, angle: float, top: int, bottom: int) -> Image.Image:
    """The character's coverage mask (L) on the text's line (rows ``top`` to ``bottom``
    of the font's drawing box, so that characters placed at one height share a
    baseline), rotated by ``angle`` degrees and cropped to its ink left and right."""
    left, _, right, _ = font.getbbox(char)
    mask = Image.new("L", (right - left + 4, bottom - top))
    ImageDraw.Draw(mask).text((2 - left, -top), char, font=font, fill=255)
    if angle:
        mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True)
    x0, _, x1, _ = mask.getbbox() or (0, 0, 1, 1)
    return mask.crop((x0, 0, x1, mask.height))


def _glyphs(text: str, font: ImageFont.FreeTypeFont, tilt: float, rng: random.Random) -> list:
    boxes = [font.getbbox(ch) for ch in text]
    top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
    return [_glyph(ch, font, rng.uniform(-tilt, tilt), top, bottom) for ch in text]


def render(text: str, rng: random.Random, width: int, height: int, fonts: tuple, font_sizes: tuple) -> np.ndarray:
    """A (height, width) uint8 grayscale image of ``text``."""
    paper = rng.randint(170, 255)
    ink = rng.randint(0, paper - 90)
    noise = np.random.default_rng(rng.getrandbits(64)).normal(0.0, rng.uniform(0.0, 18.0), (height, width))
    shade = np.linspace(0.0, rng.uniform(-30.0, 30.0), width)[None, :]  # a left-to-right gradient
    image = Image.fromarray(np.clip(paper + shade + noise, 0, 255).astype(np.uint8))

    font_path = rng.choice(fonts)
    size = rng.choice(font_sizes)
    tilt = rng.uniform(0.0, 25.0)  # the most a character is rotated, this image
    glyphs = _glyphs(text, _font(font_path, size), tilt, rng)
    gaps = [rng.randint(-2, 5) for _ in text[1:]]
    total, line = sum(g.width for g in glyphs) + sum(gaps), max(g.height for g in glyphs)
    if total > width - 4 or line > height + 4:  # too big: one size smaller that fits
        scale = min((width - 4) / max(total, 1), (height + 4) / line)
        size = max(6, int(size * scale))
        glyphs = _glyphs(text, _font(font_path, size), tilt, rng)
        gaps = [min(g, 1) for g in gaps]
        total, line = sum(g.width for g in glyphs) + sum(gaps), max(g.height for g in glyphs)
    x = rng.randint(2, max(2, width - 2 - total))
    top = rng.randint(min(0, height - line), max(0, height - line))  # where the line of text sits
    for glyph, gap in zip(glyphs, [*gaps, 0]):
        y = top + (line - glyph.height) // 2 + rng.randint(-(height // 10), height // 10)
        image.paste(ink, (x, y), glyph)
        x += glyph.width + gap

    draw = ImageDraw.Draw(image)
    for _ in range(rng.choice((0, 1, 1, 2))):  # lines and curves through the text
        colour = ink if rng.random() < 0.7 else rng.randint(0, paper)
        x0, x1 = rng.randint(0, width // 4), rng.randint(3 * width // 4, width - 1)
        y0, y1 = rng.randint(height // 4, 3 * height // 4), rng.randint(height // 4, 3 * height // 4)
        bend, phase = rng.uniform(0.0, height / 4), rng.uniform(0.0, 2 * math.pi)
        points = [(x, y0 + (y1 - y0) * (x - x0) / max(x1 - x0, 1) + bend * math.sin(phase + 6 * (x - x0) / width))
                  for x in range(x0, x1 + 1, 4)]
        draw.line(points, fill=colour, width=rng.randint(1, max(1, height // 12)))
    for _ in range(rng.choice((0, 0, 30, 100))):  # dots
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=rng.randint(0, 255))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0))))
