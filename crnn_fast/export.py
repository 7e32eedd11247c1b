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

``--bn-data DIR`` first re-estimates the BatchNorm statistics on the first
``--bn-images`` images of DIR (a ``crnn_fast.data`` cache or a folder of labelled
images of the style the model will read), as training does after each epoch
(``crnn_fast.train.reestimate_batchnorm``): for checkpoints trained before it did,
whose statistics averaged the augmented batches.
"""

import argparse
import logging
import sys
import warnings

import torch

from . import checkpoint
from .evaluate import check_image_size, load_eval_data
from .model import CRNN
from .train import BN_IMAGES, positive, reestimate_batchnorm

ONNX_OPSET = 18


def load_state(checkpoint_path=None, bn_data=None, bn_images: int = BN_IMAGES) -> dict:
    """The checkpoint (or shipped model: ``None``, ``"default"``, ``"local"``), with its
    BatchNorm statistics re-estimated on the first ``bn_images`` images of ``bn_data``
    (a cache or a folder of labelled images) when it is given; that fact is then kept
    under ``"batchnorm"``."""
    if isinstance(bn_images, bool) or not isinstance(bn_images, int) or bn_images < 1:
        raise ValueError(f"bn_images must be an int >= 1, got {bn_images!r}")
    state = checkpoint.load(checkpoint.resolve(checkpoint_path))
    if bn_data is None:
        return state
    model = checkpoint.model_from_state(state)
    config = model.config
    dataset = load_eval_data(bn_data, config.alphabet, 1, "", config.height, config.width)
    check_image_size(model, dataset)
    images = dataset.images[:bn_images]
    reestimate_batchnorm(model, images, "cpu")
    return {**state, "model": model.state_dict(),
            "batchnorm": f"re-estimated on the first {len(images)} images of {bn_data}"}


def export_weights(state: dict, out, source="the checkpoint") -> dict:
    """Writes the inference weights of a training checkpoint, or of a file exported
    before (``state``, from :func:`load_state`) to ``out``; returns the facts stored with
    them: the training run's config, its last epoch and that epoch's validation
    metrics, the torch that exported them, and how the BatchNorm statistics were
    re-estimated, if they were (an exported file's facts carry over)."""
    if "train_config" in state:
        last = state["history"][-1]
        info = {"train_config": state["train_config"], "epoch": last["epoch"], "val": last["val"]}
    elif "train_config" in state.get("info", {}):
        info = dict(state["info"])
    else:
        raise ValueError(f"{source} is neither a training checkpoint nor a file exported from one (no train_config "
                         "in it)")
    info["exported_with_torch"] = str(torch.__version__)
    if "batchnorm" in state:
        info["batchnorm"] = state["batchnorm"]
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
    parser.add_argument("--checkpoint", help="a checkpoint written by crnn_fast.train, or a file exported from one "
                        "(default: the shipped model)")
    parser.add_argument("--onnx", metavar="PATH", help="write the model as ONNX")
    parser.add_argument("--weights", metavar="PATH", help="write the inference weights (.pt)")
    parser.add_argument("--bn-data", metavar="DIR", help="first re-estimate the BatchNorm statistics on the images of "
                        "DIR (a crnn_fast.data cache or a folder of labelled images), un-augmented")
    parser.add_argument("--bn-images", type=positive(int), default=BN_IMAGES, metavar="N",
                        help=f"with --bn-data: how many of its images (default: {BN_IMAGES})")
    args = parser.parse_args(argv)
    if not (args.onnx or args.weights):
        parser.error("nothing to do: give --onnx PATH and/or --weights PATH")
    if args.weights and not (args.checkpoint or args.bn_data):
        parser.error("--weights needs --checkpoint or --bn-data (the shipped model is already weights only)")
    try:
        state = load_state(args.checkpoint, args.bn_data, args.bn_images)
        if args.weights:
            info = export_weights(state, args.weights, args.checkpoint or "the shipped model")
            note = " (the training run's, before BatchNorm was re-estimated)" if "batchnorm" in info else ""
            print(f"wrote {args.weights}: epoch {info['epoch']}, validation exact {100 * info['val']['exact']:.2f}%{note}")
        if args.onnx:
            export_onnx(checkpoint.model_from_state(state), args.onnx)
            print(f"wrote {args.onnx}")
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
