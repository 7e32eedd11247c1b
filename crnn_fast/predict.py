"""Read the text in images with a trained checkpoint.

    python -m crnn_fast.predict image1.png image2.jpg ...        # the shipped model
    python -m crnn_fast.predict --checkpoint runs/default/best.pt image1.png ...
    python -m crnn_fast.predict --json --min-confidence 0.9 image1.png ...

Prints one line per image: its path, the text read, and a confidence between 0 and
1: the probability of that text summed over its CTC alignments (beam search, the
default), or of the single best path (--decoder greedy); with --min-confidence, a
fourth column ``doubtful`` marks reads below it. --json prints a list with, for each
image, also every character's confidence: its probability at its most probable frame.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from . import checkpoint, data
from .evaluate import DECODERS, autocast, decode
from .ops import ctc_beam_search


class Reading(NamedTuple):
    text: str
    confidence: float
    """The probability of ``text``: over its alignments (beam) or of the best path (greedy)."""
    char_confidences: list
    """Each character's probability at its most probable frame."""


def greedy_frames(log_probs: torch.Tensor) -> torch.Tensor:
    """(B, T) int64: for each label of the best path, its most probable frame within its
    run of frames (padded with 0); the greedy counterpart of beam search's timesteps."""
    best, path = log_probs.max(-1)
    frames = torch.zeros(path.shape, dtype=torch.int64)
    for b, (row, scores) in enumerate(zip(path.tolist(), best.tolist())):
        label, previous = -1, 0
        for t, c in enumerate(row):
            if c != 0 and c != previous:
                label += 1
                frames[b, label] = t
            elif c != 0 and scores[t] > scores[frames[b, label]]:
                frames[b, label] = t
            previous = c
    return frames


@torch.no_grad()
def predict(model, images: torch.Tensor, decoder: str = "beam", beam_width: int = 10) -> list[Reading]:
    """A ``Reading`` (text, confidence, char_confidences) for each (H, W) uint8 image of a batch."""
    device = next(model.parameters()).device
    with autocast(device):
        log_probs = model(images.to(device)).float()
    if decoder == "beam":
        result = ctc_beam_search(log_probs, beam_width=beam_width)
        tokens, lengths, log_p, frames = (x[:, 0] for x in result)
    else:
        tokens, lengths, log_p = decode(log_probs, decoder)
        frames = greedy_frames(log_probs.cpu())
    frames = frames.to(device, torch.int64).clamp(min=0)
    ids = tokens.to(torch.int64).clamp(min=0)
    char_p = log_probs.gather(1, frames.unsqueeze(-1).expand(-1, -1, log_probs.shape[-1]))
    char_p = char_p.gather(2, ids.unsqueeze(-1)).squeeze(-1).exp()
    alphabet = model.config.alphabet
    return [
        Reading("".join(alphabet[t - 1] for t in row[:n]), p, chars[:n])
        for row, n, p, chars in zip(tokens.tolist(), lengths.tolist(), log_p.exp().tolist(), char_p.tolist())
    ]


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def read_images(paths: list, height: int, width: int) -> np.ndarray:
    """The images at ``paths`` as (N, height, width) uint8; a file that cannot be read
    raises a ValueError naming it."""
    images = []
    for path in paths:
        try:
            images.append(data.read_image(Path(path), height, width))
        except FileNotFoundError:
            raise FileNotFoundError(f"no image file {path}") from None
        except Exception as err:  # Pillow signals corrupt files with many exception types
            raise ValueError(f"cannot read image {path}: {type(err).__name__}: {err}") from None
    return np.stack(images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint written by crnn_fast.train, or a shipped model: default "
                        "(the default) or local")
    parser.add_argument("images", nargs="+", help="image files, any size and colour mode")
    parser.add_argument("--decoder", choices=DECODERS, default="beam", help="CTC decoder (default: beam)")
    parser.add_argument("--beam-width", type=int, default=10, help="beam width of --decoder beam (default: 10)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print a JSON list, with per-character confidences")
    parser.add_argument("--min-confidence", type=probability, metavar="P",
                        help="mark reads whose confidence is below P as doubtful")
    args = parser.parse_args(argv)
    if args.beam_width < 1:
        parser.error("--beam-width must be >= 1")
    try:
        model = checkpoint.load_model(args.checkpoint, args.device)
        batch = read_images(args.images, model.config.height, model.config.width)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    readings = predict(model, torch.from_numpy(batch), args.decoder, args.beam_width)
    doubtful = [args.min_confidence is not None and r.confidence < args.min_confidence for r in readings]
    if args.json:
        print(json.dumps([
            {"path": path, "text": r.text, "confidence": r.confidence, "doubtful": flag,
             "chars": [{"char": ch, "confidence": p} for ch, p in zip(r.text, r.char_confidences)]}
            for path, r, flag in zip(args.images, readings, doubtful)
        ], indent=2))
        return 0
    for path, r, flag in zip(args.images, readings, doubtful):
        print(f"{path}\t{r.text}\t{r.confidence:.4f}" + ("\tdoubtful" if flag else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
