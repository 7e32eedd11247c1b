"""Export a trained model for inference.

    python -m crnn_fast.export --onnx model.onnx                    # the shipped model
    python -m crnn_fast.export --checkpoint runs/default/best.pt --onnx model.onnx
    python -m crnn_fast.export --checkpoint runs/default/best.pt --weights model.pt

``--onnx`` writes an ONNX graph (opset 18, dynamic batch) that needs no PyTorch to run:
input ``images``, uint8 (batch, height, width) grayscale, exactly the arrays
``predict`` feeds the model (``crnn_fast.data.read_image``: converted to 8-bit
grayscale, resized bilinearly to the model's size); output ``log_probs``, float32
(batch, frames, classes), log-softmax over the classes, blank = 0 and class i + 1 =
``alphabet[i]``. The alphabet, height and width are stored in the file's metadata
(``alphabet``, ``height``, ``width``, ``blank``). Needs the ``onnx`` extra.

``--weights`` writes the weights (float16) and model config of a training checkpoint,
without the optimizer state: a file a quarter of the checkpoint's size that
``crnn_fast.load_model``, ``evaluate --checkpoint`` and ``predict --checkpoint`` read.
The model shipped in the package was made this way (README, "The shipped model").
"""

import argparse
import logging
import sys
import warnings

import torch

from . import checkpoint
from .model import CRNN

ONNX_OPSET = 18


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


def export_onnx(model: CRNN, out) -> None:
    """Writes ``model`` to ``out`` as ONNX (see the module's docstring), atomically."""
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs onnx and onnxscript: pip install 'crnn_fast[onnx]'") from None
    config = model.config
    model = model.float().eval()
    example = torch.zeros(2, config.height, config.width, dtype=torch.uint8)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it lists the torchvision ops it cannot find, which a CRNN does not use
    try:
        with warnings.catch_warnings():  # torch.export's notes on the RNN's internals: not the user's business
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["log_probs"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                        opset_version=ONNX_OPSET, verbose=False)
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    meta = {"alphabet": config.alphabet, "height": str(config.height), "width": str(config.width), "blank": "0"}
    onnx.helper.set_model_props(proto, meta)
    checkpoint.write_bytes_atomic(out, proto.SerializeToString())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint written by crnn_fast.train (default: the shipped model; "
                        "--weights needs one)")
    parser.add_argument("--onnx", metavar="PATH", help="write the model as ONNX")
    parser.add_argument("--weights", metavar="PATH", help="write the inference weights (.pt)")
    args = parser.parse_args(argv)
    if not (args.onnx or args.weights):
        parser.error("nothing to do: give --onnx PATH and/or --weights PATH")
    if args.weights and not args.checkpoint:
        parser.error("--weights needs --checkpoint (the shipped model is already weights only)")
    try:
        if args.weights:
            info = export_weights(args.checkpoint, args.weights)
            print(f"wrote {args.weights}: epoch {info['epoch']}, validation exact {100 * info['val']['exact']:.2f}%")
        if args.onnx:
            export_onnx(checkpoint.load_model(args.checkpoint), args.onnx)
            print(f"wrote {args.onnx}")
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
