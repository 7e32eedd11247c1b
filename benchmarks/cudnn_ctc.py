"""cuDNN's CTC loss against torch's own CUDA kernel: gradient error and speed.

    python benchmarks/cudnn_ctc.py --out results/cudnn-ctc-<gpu>.json

Training keeps ``F.ctc_loss`` on torch's kernels (train.ctc_loss_args: padded int64
targets). cuDNN's kernel is reached only through the layout it accepts: 1-D int32
targets and lengths on the CPU, float32 log-probs, every input as long as the longest.
For each layout and with deterministic algorithms off and on, this computes the loss
and the gradient with respect to the logits (through log_softmax, as training does) of
random (B, T, C) logits and random labels, and compares them with the CPU's in float64;
then it times forward + backward at the training shape (the median of ``--repeats``
calls after 3 warm-ups). Without a GPU it says so and exits with status 2.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from crnn_fast import train


def inputs(batch: int, frames: int, classes: int, max_label: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, classes, generator=g)
    lengths = torch.randint(1, max_label + 1, (batch,), generator=g, dtype=torch.int32)
    padded = torch.randint(1, classes, (batch, max_label), generator=g, dtype=torch.int32)
    padded[torch.arange(max_label) >= lengths[:, None]] = -1
    return logits, padded, lengths


def cudnn_args(log_probs, padded, lengths):
    """The layout cuDNN's CTC accepts (int32, concatenated targets and lengths on the CPU)."""
    flat = padded[padded > 0].to(torch.int32)
    frames = torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.int32)
    return log_probs.transpose(0, 1), flat, frames, lengths.to(torch.int32)


LAYOUTS = {"training's (padded int64 on the device)": train.ctc_loss_args, "cuDNN's (int32 on the CPU)": cudnn_args}


def loss_and_grad(logits, padded, lengths, device, layout, dtype=torch.float32):
    x = logits.to(device, dtype).requires_grad_()
    args = LAYOUTS[layout](x.log_softmax(-1), padded, lengths)
    loss = F.ctc_loss(*args, blank=0, reduction="mean", zero_infinity=True)
    loss.backward()
    return loss.detach().double().cpu(), x.grad.double().cpu(), train.ctc_backend(*args)


def timed(logits, padded, lengths, layout, repeats):
    x = logits.cuda().requires_grad_()

    def call():
        args = LAYOUTS[layout](x.log_softmax(-1), padded, lengths)
        F.ctc_loss(*args, blank=0, zero_infinity=True).backward()

    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=train.positive(int), default=8, help="sequences in the accuracy check")
    parser.add_argument("--time-batch", type=train.positive(int), default=256, help="sequences in the timing")
    parser.add_argument("--frames", type=train.positive(int), default=37)
    parser.add_argument("--classes", type=train.positive(int), default=63)
    parser.add_argument("--max-label", type=train.positive(int), default=5)
    parser.add_argument("--repeats", type=train.positive(int), default=20)
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.classes < 2 or args.max_label > args.frames:
        parser.error("--classes must be at least 2 and --max-label at most --frames")
    if not torch.cuda.is_available():
        print("no CUDA GPU visible: nothing to compare", file=sys.stderr)
        return 2
    logits, padded, lengths = inputs(args.batch, args.frames, args.classes, args.max_label)
    ref_loss, ref_grad, _ = loss_and_grad(logits, padded, lengths, "cpu", next(iter(LAYOUTS)), torch.float64)
    timing = inputs(args.time_batch, args.frames, args.classes, args.max_label, seed=1)
    rows = []
    for deterministic in (False, True):
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.deterministic = deterministic
        for layout in LAYOUTS:
            loss, grad, backend = loss_and_grad(logits, padded, lengths, "cuda", layout)
            rows.append({"deterministic": deterministic, "layout": layout, "backend": backend,
                         "loss_abs_error": abs(loss - ref_loss).item(),
                         "grad_max_abs_error": (grad - ref_grad).abs().max().item(),
                         "grad_max_abs": ref_grad.abs().max().item(),
                         "ms_forward_backward": 1e3 * timed(*timing, layout, args.repeats)})
            r = rows[-1]
            print(f"deterministic={deterministic!s:5} {layout:40s} {backend:12s} loss error {r['loss_abs_error']:.2e}  "
                  f"gradient error {r['grad_max_abs_error']:.2e} (largest entry {r['grad_max_abs']:.3f})  "
                  f"{r['ms_forward_backward']:.3f} ms at batch {args.time_batch}", flush=True)
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "args": vars(args), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
