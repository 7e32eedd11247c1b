"""How well can the reference renderer's characters be told apart one at a time?

The ``captcha`` package draws each character on its own, crops it to its ink, rotates
and warps it, then stretches it back to a box set by the font size (the same box for
``o``, ``O`` and ``0``, or ``v`` and ``V``): the glyph keeps its shape but loses its
size and its place on the baseline. This script renders single characters exactly that
way (captcha's own ``_draw_character``, its colours, its smoothing, no noise dots or
curve, one glyph centred in a 40x40 cell), trains a small CNN on them and reports which
characters it still confuses: an estimate of how separable the glyphs are on their
own, not a proof of a floor (a better classifier could do better; the full images add
noise, neighbours and squeezing).

    python benchmarks/glyph_ambiguity.py --out results/glyph-ambiguity.json
"""

import argparse
import collections
import json
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

import captcha.image
from crnn_fast.data import styles
from crnn_fast.evaluate import autocast
from crnn_fast.train import positive

CELL = 40


def render_glyphs(alphabet: str, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, CELL, CELL) uint8 glyphs and (N,) class indices, ``per_class`` of each."""
    style = styles.Style()
    renderer = styles._renderer(style)
    rng = random.Random(seed)
    labels = np.repeat(np.arange(len(alphabet)), per_class)
    images = np.empty((len(labels), CELL, CELL), dtype=np.uint8)
    for row, label in enumerate(labels):
        with styles._captcha_randomness(rng):  # the draws generate_image makes, in its order
            background = captcha.image.random_color(238, 255)
            color = captcha.image.random_color(10, 200, rng.randrange(36) + 220)
            cell = Image.new("RGB", (CELL, CELL), background)
            glyph = renderer._draw_character(alphabet[label], ImageDraw.Draw(cell), color)
        mask = glyph.convert("L").point(renderer.lookup_table)
        cell.paste(glyph, ((CELL - glyph.width) // 2, (CELL - glyph.height) // 2), mask)
        images[row] = np.asarray(cell.filter(ImageFilter.SMOOTH).convert("L"))
    return images, labels


def classifier(classes: int) -> torch.nn.Module:
    def block(cin, cout):
        return [torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(),
                torch.nn.Conv2d(cout, cout, 3, padding=1, bias=False), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(),
                torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64), torch.nn.Flatten(),
                               torch.nn.Dropout(0.2), torch.nn.Linear(64 * (CELL // 8) ** 2, classes))


def as_input(images: np.ndarray) -> torch.Tensor:
    return (1.0 - torch.from_numpy(images).float().unsqueeze(1) / 255.0)  # ink as 1


def train(model, images, labels, epochs: int, batch: int, lr: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    x, y = as_input(images), torch.from_numpy(labels)
    batch = min(batch, len(y))
    per_epoch = len(y) // batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * per_epoch)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for step in range(per_epoch):
            index = order[step * batch:(step + 1) * batch]
            with autocast(torch.device("cpu")):
                loss = F.cross_entropy(model(x[index]).float(), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{epochs}: loss {total / per_epoch:.4f}", flush=True)


@torch.no_grad()
def predict(model, images) -> np.ndarray:
    model.eval()
    x = as_input(images)
    with autocast(torch.device("cpu")):
        return torch.cat([model(x[i:i + 1024]).argmax(1) for i in range(0, len(x), 1024)]).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-per-class", type=positive(int), default=4000, help="training glyphs per character (default: 4000)")
    parser.add_argument("--test-per-class", type=positive(int), default=1000, help="test glyphs per character (default: 1000)")
    parser.add_argument("--epochs", type=positive(int), default=8, help="(default: 8)")
    parser.add_argument("--batch", type=positive(int), default=256, help="(default: 256)")
    parser.add_argument("--lr", type=positive(float), default=3e-3, help="peak learning rate, one-cycle (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="training glyphs, weights and order; the test glyphs use seed + 1,000,000")
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    alphabet = styles.ALPHABET

    start = time.perf_counter()
    train_x, train_y = render_glyphs(alphabet, args.train_per_class, seed=args.seed)
    test_x, test_y = render_glyphs(alphabet, args.test_per_class, seed=args.seed + 1_000_000)
    render_s = time.perf_counter() - start
    model = classifier(len(alphabet))
    train(model, train_x, train_y, args.epochs, args.batch, args.lr, args.seed)
    guess = predict(model, test_x)

    wrong = guess != test_y
    folded = np.array([alphabet[g].lower() != alphabet[t].lower() for g, t in zip(guess, test_y)])
    pairs = collections.Counter((alphabet[t], alphabet[g]) for t, g in zip(test_y[wrong], guess[wrong]))
    result = {
        "command": " ".join(["python", "benchmarks/glyph_ambiguity.py", *(sys.argv[1:] if argv is None else argv)]),
        "train_glyphs": len(train_y), "test_glyphs": len(test_y), "epochs": args.epochs, "seed": args.seed,
        "error": float(wrong.mean()), "error_case_folded": float(folded.mean()),
        "per_class_error": {c: float(wrong[test_y == i].mean()) for i, c in enumerate(alphabet)},
        "confusions": [{"true": t, "read": g, "count": n} for (t, g), n in pairs.most_common()],
        "render_s": render_s, "total_s": time.perf_counter() - start, "torch": torch.__version__,
    }
    print(f"{len(test_y)} test glyphs: error {result['error']:.2%}, ignoring case {result['error_case_folded']:.2%}")
    for item in result["confusions"][:15]:
        print(f"  {item['true']} read as {item['read']}: {item['count']} of {args.test_per_class}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
