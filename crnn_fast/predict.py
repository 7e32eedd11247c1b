"""Read the text in images with a trained checkpoint.

    python -m crnn_fast.predict image1.png image2.jpg ...        # the shipped model
    python -m crnn_fast.predict --checkpoint runs/default/best.pt image1.png ...

Prints one line per image: its path, the text read, and a confidence between 0 and
1: the probability of that text summed over its CTC alignments (beam search, the
default), or of the single best path (--decoder greedy).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, data
from .evaluate import DECODERS, autocast, decode


@torch.no_grad()
def predict(model, images: torch.Tensor, decoder: str = "beam", beam_width: int = 10) -> list[tuple[str, float]]:
    """(text, confidence) for each (H, W) uint8 image of a batch."""
    device = next(model.parameters()).device
    with autocast(device):
        log_probs = model(images.to(device))
    tokens, lengths, log_p = decode(log_probs, decoder, beam_width)
    confidence = log_p.exp()
    alphabet = model.config.alphabet
    return [
        ("".join(alphabet[t - 1] for t in row[:n]), p)
        for row, n, p in zip(tokens.tolist(), lengths.tolist(), confidence.tolist())
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint written by crnn_fast.train (default: the shipped model)")
    parser.add_argument("images", nargs="+", help="image files, any size and colour mode")
    parser.add_argument("--decoder", choices=DECODERS, default="beam", help="CTC decoder (default: beam)")
    parser.add_argument("--beam-width", type=int, default=10, help="beam width of --decoder beam (default: 10)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.beam_width < 1:
        parser.error("--beam-width must be >= 1")
    try:
        model = checkpoint.load_model(args.checkpoint, args.device)
        batch = np.stack([data.read_image(Path(p), model.config.height, model.config.width) for p in args.images])
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, (text, confidence) in zip(args.images, predict(model, torch.from_numpy(batch), args.decoder, args.beam_width)):
        print(f"{path}\t{text}\t{confidence:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
