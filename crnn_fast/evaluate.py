"""Evaluate a checkpoint: exact match, character accuracy, CER, mean edit distance,
case-insensitive exact match and the most frequent confusions.

    python -m crnn_fast.evaluate [--checkpoint runs/default/best.pt] [--data DIR] [--json]

Without --checkpoint it evaluates the pretrained model shipped in the package.

The whole path stays on the device: forward, greedy decoding, and the fused metric
op; only the metric sums and the few misread samples' strings come to the host.
"""

import argparse
import functools
import json
import sys
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint, data, distributed
from .ops import SequenceMetrics, ctc_beam_search, ctc_greedy_decode

DECODERS = ("greedy", "beam")


def decode(log_probs: torch.Tensor, decoder: str = "greedy", beam_width: int = 10):
    """(tokens (B, T) int32 padded with -1, lengths (B,) int32, log-probability (B,)) of the
    best labelling: the best path's for greedy, the beam's (all alignments) for beam."""
    if decoder == "greedy":
        tokens, lengths = ctc_greedy_decode(log_probs)
        return tokens, lengths, log_probs.max(-1).values.sum(-1)
    if decoder == "beam":
        result = ctc_beam_search(log_probs, beam_width=beam_width)
        return result.tokens[:, 0], result.lengths[:, 0], result.scores[:, 0]
    raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")


def case_fold_map(alphabet: str) -> torch.Tensor:
    """Token id (blank 0, then the alphabet from 1) to the id of its lowercase form,
    where the alphabet has it; used for case-insensitive exact match."""
    ids = {ch: i + 1 for i, ch in enumerate(alphabet)}
    return torch.tensor([0] + [ids.get(ch.lower(), ids[ch]) for ch in alphabet], dtype=torch.int64)


@functools.cache  # asked per training step and per evaluated batch; the answer never changes
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: GPUs that support it, and CPUs
    with AVX512-BF16 or AMX (where oneDNN's bf16 convolutions and RNNs run about twice
    as fast as float32; elsewhere bf16 would be emulated, and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or \
            getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return False


def autocast(device: torch.device, bf16: Optional[bool] = None):
    """bf16 autocast for the network if ``bf16``, by default where the device computes
    in bf16 natively (``native_bf16``); float32 otherwise. The log-softmax is always
    float32."""
    if native_bf16(device) if bf16 is None else bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def tokens_of(dataset: data.CaptchaDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, Lmax) int32 model token ids (alphabet index + 1, padding -1) and (N,) int32 lengths."""
    labels = torch.from_numpy(np.asarray(dataset.labels, dtype=np.int32))
    return torch.where(labels >= 0, labels + 1, -1), torch.from_numpy(np.asarray(dataset.lengths, dtype=np.int32))


def default_batch_size(device) -> int:
    """evaluate's batch size when none is given: 1024 on a GPU, 64 on the CPU (where
    large batches run slower)."""
    return 1024 if torch.device(device).type == "cuda" else 64


def check_image_size(model, dataset: data.CaptchaDataset) -> None:
    """Raises ValueError unless ``dataset``'s images have the size ``model`` reads."""
    if tuple(dataset.images.shape[1:]) != (model.config.height, model.config.width):
        raise ValueError(f"the images are {tuple(dataset.images.shape[1:])} but the model reads "
                         f"{(model.config.height, model.config.width)} (height, width)")


@torch.no_grad()
def evaluate(model, dataset: data.CaptchaDataset, device, batch_size: Optional[int] = None, progress: bool = True,
             confusions: int = 10, decoder: str = "greedy", beam_width: int = 10) -> dict:
    """Metrics of ``model`` on ``dataset``, computed in batches on ``device`` (default
    batch size: 1024 on a GPU, 64 on the CPU, where large batches run slower)."""
    device = torch.device(device)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
    batch_size = batch_size or default_batch_size(device)
    model.eval()
    alphabet = model.config.alphabet
    check_image_size(model, dataset)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    unknown = {dataset.alphabet[i] for i in np.unique(labels[labels >= 0])} - set(alphabet)
    if unknown:
        raise ValueError(f"the data has characters the model cannot output: {''.join(sorted(unknown))}")
    # the data's class indices, translated into the model's token ids
    remap = torch.tensor([alphabet.find(ch) + 1 for ch in dataset.alphabet] + [-1], dtype=torch.int32)
    refs = remap[torch.from_numpy(labels)].to(device)  # -1 padding indexes the trailing -1
    ref_lengths = torch.from_numpy(np.asarray(dataset.lengths, dtype=np.int64)).to(device)
    metrics = SequenceMetrics(case_fold_map(alphabet))
    wrong_hyp, wrong_ref = [], []
    ctx = distributed.context()
    shard = ctx.shard(len(dataset))  # under torchrun each rank reads its share; the sums are reduced
    start = time.perf_counter()
    batches = range(shard.start, shard.stop, batch_size)
    for lo in tqdm(batches, desc="evaluate", unit="batch", disable=not (progress and ctx.main)):
        hi = min(lo + batch_size, shard.stop)
        images = torch.from_numpy(np.array(dataset.images[lo:hi])).to(device, non_blocking=True)
        with autocast(device):
            log_probs = model(images)
        tokens, lengths, _ = decode(log_probs, decoder, beam_width)
        ref, ref_len = refs[lo:hi], ref_lengths[lo:hi]
        distances = metrics.update(tokens, lengths, ref, ref_len)
        if confusions:
            wrong = distances > 0
            wrong_hyp += tokens[wrong].cpu().tolist()
            wrong_ref += ref[wrong].cpu().tolist()
    result = metrics.all_reduce().compute()
    result["decoder"] = decoder if decoder == "greedy" else f"beam (width {beam_width})"
    result["seconds"] = time.perf_counter() - start
    result["images_per_s"] = len(dataset) / result["seconds"]
    if confusions:
        gathered = distributed.gather_to_main((wrong_hyp, wrong_ref))
        if gathered is not None:
            pairs = [pair for hyp, ref in gathered for pair in zip(hyp, ref)]
            result["confusions"] = confusion_pairs(pairs, alphabet, confusions)
    return result


def confusion_pairs(pairs, alphabet: str, top: int) -> list:
    """The most frequent (true, read) character pairs among misread samples, given as
    (hypothesis, reference) token-id lists, whose prediction has the right length
    (compared position by position)."""
    counts = Counter()
    for h, r in pairs:
        h, r = [t for t in h if t > 0], [t for t in r if t > 0]
        if len(h) == len(r):
            counts.update((alphabet[b - 1], alphabet[a - 1]) for a, b in zip(h, r) if a != b)
    return [[truth, read, n] for (truth, read), n in counts.most_common(top)]


def format_report(result: dict) -> str:
    lines = [
        f"samples            {result['count']} (decoder: {result['decoder']})",
        f"exact match        {100 * result['exact']:.2f}%",
        f"exact (no case)    {100 * result['exact_folded']:.2f}%",
        f"char accuracy      {100 * result['char_acc']:.2f}%",
        f"CER                {100 * result['cer']:.2f}%",
        f"mean edit distance {result['mean_edit']:.4f}",
        f"throughput         {result['images_per_s']:.0f} images/s",
    ]
    if result.get("confusions"):
        lines.append("top confusions     " + ", ".join(f"{t}->{r} x{n}" for t, r, n in result["confusions"]))
    return "\n".join(lines)


def load_eval_data(path: Optional[str], alphabet: str, n_test: int, data_dir: str, height: int, width: int):
    """A cache directory, a folder of images, or (no path) the synthetic test split."""
    if path is None:
        return data.synthetic(data_dir, "test", n_test)
    if (Path(path) / "meta.json").is_file():
        return data.load(path)
    return data.load_folder(path, alphabet=alphabet, height=height, width=width)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crnn_fast.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a checkpoint written by crnn_fast.train, or a shipped model: default "
                        "(the default) or local")
    parser.add_argument("--data", help="a cache from crnn_fast.data or a folder of labelled images "
                        "(default: the synthetic test split under --data-dir)")
    parser.add_argument("--data-dir", default="data", help="where synthetic splits are cached (default: data)")
    parser.add_argument("--n-test", type=int, default=10_000, help="size of the synthetic test split (default: 10000)")
    parser.add_argument("--decoder", choices=DECODERS, default="greedy", help="CTC decoder (default: greedy)")
    parser.add_argument("--beam-width", type=int, default=10, help="beam width of --decoder beam (default: 10)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 1024 on a GPU, 64 on the CPU)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto; "
                        "under torchrun each rank takes the GPU of its LOCAL_RANK)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if args.n_test < 1:
        parser.error("--n-test must be >= 1")
    if args.beam_width < 1:
        parser.error("--beam-width must be >= 1")
    try:
        ctx, device = distributed.init(args.device)  # under torchrun: one shard of the data per rank
        model = checkpoint.load_model(args.checkpoint, device)
        config = model.config
        dataset = load_eval_data(args.data, config.alphabet, args.n_test, args.data_dir, config.height, config.width)
        result = evaluate(model, dataset, device, args.batch_size, progress=not args.json,
                          decoder=args.decoder, beam_width=args.beam_width)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.close()
    if ctx.main:
        print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
