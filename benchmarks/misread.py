"""What the shipped model still gets wrong: the first misread images of the synthetic test
split, each with its label and the model's greedy reading.

    python benchmarks/misread.py --out results/misread.png
"""

import argparse
from pathlib import Path

import matplotlib
import torch

from crnn_fast import checkpoint, data, evaluate
from crnn_fast.predict import predict


NAMES = {"0": "zero", "O": "capital O", "o": "small o"}  # glyphs a caption font may draw alike


def changes(truth: str, reading: str) -> str:
    """The misread characters, true -> read, position by position where the lengths
    agree (``"capital O->zero"``); empty otherwise."""
    if len(truth) != len(reading):
        return ""
    return ", ".join(f"{NAMES.get(t, t)}→{NAMES.get(r, r)}" for t, r in zip(truth, reading) if t != r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--checkpoint", default="default", help="model (default: the shipped one)")
    parser.add_argument("--data-dir", default="data", help="where synthetic splits are cached (default: data)")
    parser.add_argument("--n-test", type=int, default=10_000, help="size of the test split (default: 10000)")
    parser.add_argument("--show", type=int, default=16, help="misread images to show (default: 16)")
    args = parser.parse_args()
    if args.n_test < 1 or args.show < 1:
        parser.error("--n-test and --show must be >= 1")

    model = checkpoint.load_model(args.checkpoint)
    test = data.synthetic(args.data_dir, "test", args.n_test)
    try:
        evaluate.check_image_size(model, test)
    except ValueError as err:
        parser.error(f"--checkpoint: {err}")
    truths = test.texts()
    wrong = []  # (index, reading)
    for start in range(0, len(test), 256):
        batch = torch.from_numpy(test.images[start : start + 256].copy())
        for offset, reading in enumerate(predict(model, batch, decoder="greedy")):
            if reading.text != truths[start + offset]:
                wrong.append((start + offset, reading.text))
    print(f"{len(wrong)} of {len(test)} test images misread")
    shown = wrong[: args.show]
    if not shown:
        print(f"nothing to draw: {args.out} not written")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, reading) in zip(axes.flat, shown):
        ax.axis("on")
        ax.imshow(test.images[index], cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{truths[index]} read {reading}\n{changes(truths[index], reading)}", fontsize=9,
                      family="monospace")
    fig.suptitle(f"the first {len(shown)} of the {len(wrong)} test images (of {len(test)}) the model misreads: "
                 "label, then reading", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
