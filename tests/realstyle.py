"""A CAPTCHA style that neither the shipped model nor the `captcha` package has seen,
for fine-tuning tests and the README's fine-tuning curve (issue: "your own CAPTCHAs").

Modelled on the Kaggle captcha_images_v2 set that CAPTCHA-OCR projects fine-tune on:
5 characters over 19 symbols, dark serif text on a light textured background, one
thick line struck through the text, a little blur. Drawn with Pillow and the fonts
matplotlib ships (a dependency), so it needs nothing else and never changes with the
`captcha` package. Sample i of a set depends only on (seed, i).

    python tests/realstyle.py OUT_DIR --n 1100 --seed 0     # PNG files named by label
"""

import argparse
import random
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ALPHABET = "2345678bcdefgmnpwxy"
SIZE = (200, 50)  # width, height, as in captcha_images_v2
FONTS = ("DejaVuSerif-Bold.ttf", "DejaVuSerif.ttf", "cmr10.ttf")


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def render(seed: int, index: int) -> tuple[str, Image.Image]:
    rng = random.Random(seed * 1_000_003 + index)
    text = "".join(rng.choice(ALPHABET) for _ in range(5))
    base = rng.randint(200, 235)
    noise = np.random.default_rng(seed * 1_000_003 + index).normal(0, 8, SIZE[::-1])
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    font = _font(rng.choice(FONTS), rng.randint(28, 34))
    x = rng.randint(14, 30)
    ink = tuple(rng.randint(20, 90) for _ in range(3))
    for ch in text:
        y = rng.randint(4, 12)
        draw.text((x, y), ch, font=font, fill=ink)
        x += int(font.getlength(ch)) + rng.randint(-2, 4)
    y0, y1 = rng.randint(18, 34), rng.randint(18, 34)
    draw.line([(rng.randint(0, 20), y0), (rng.randint(170, 199), y1)], fill=ink, width=rng.randint(2, 4))
    return text, image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))


def write(out: Path, n: int, seed: int, start: int = 0) -> list[Path]:
    """Writes samples [start, start + n) as numbered PNG files with a labels.csv (labels
    may repeat, file names do not); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows, paths = [], []
    for i in range(start, start + n):
        text, image = render(seed, i)
        path = out / f"{i:06d}.png"
        image.save(path)
        rows.append(f"{path.name},{text}")
        paths.append(path)
    (out / "labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    write(args.out, args.n, args.seed, args.start)


if __name__ == "__main__":
    main()
