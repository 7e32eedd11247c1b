"""Export a trained model for inference.

    python -m crnn_fast.export --checkpoint runs/default/best.pt --weights model.pt

``--weights`` writes the weights (float16) and model config of a training checkpoint,
without the optimizer state: a file a quarter of the checkpoint's size that
``crnn_fast.load_model``, ``evaluate --checkpoint`` and ``predict --checkpoint`` read.
The model shipped in the package was made this way (README, "The shipped model").
"""

import argparse
import sys

import torch

from . import checkpoint


def export_weights(checkpoint_path, out) -> dict:
    """Writes ``checkpoint_path``'s inference weights to ``out``; returns the facts
    stored with them: the training run's config, its last epoch and that epoch's
    validation metrics, and the torch that trained it."""
    state = checkpoint.load(checkpoint_path)
    if "train_config" not in state:
        raise ValueError(f"{checkpoint_path} is not a training checkpoint (no train_config in it)")
    last = state["history"][-1]
    info = {"train_config": state["train_config"], "epoch": last["epoch"], "val": last["val"],
            "exported_with_torch": str(torch.__version__)}
    checkpoint.save_weights(state, out, **info)
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by crnn_fast.train")
    parser.add_argument("--weights", required=True, help="where to write the inference weights (.pt)")
    args = parser.parse_args(argv)
    try:
        info = export_weights(args.checkpoint, args.weights)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.weights}: epoch {info['epoch']}, validation exact {100 * info['val']['exact']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
