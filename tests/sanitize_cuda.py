"""Every CUDA kernel once over edge-case shapes, for compute-sanitizer (not a pytest file):

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 1 \\
        python tests/sanitize_cuda.py

Without torch's caching allocator every tensor is its own allocation, so a read or write
past a tensor's end is reported. Each GPU result is also compared with the CPU kernel's
(``--device cpu`` runs the script with the CPU kernels on both sides, as a dry run).
"""

import argparse
import dataclasses
import math
import sys

import torch
from pairs import random_pairs

import crnn_fast

# (B, T, C, beam, top_paths, options): one frame, two classes, beam wider than C, zero and
# partial lengths, the CAPTCHA shape, a speech vocabulary, every cutoff, a last-index blank,
# a batch over several blocks, the widest beam.
BEAM_CASES = [
    (1, 1, 2, 1, 1, {}),
    (3, 5, 4, 8, 8, {}),
    (6, 37, 63, 10, 3, {"lengths": [37, 0, 1, 20, 36, 37]}),
    (2, 200, 1024, 10, 2, {"cutoff_top_n": 40}),
    (4, 50, 30, 16, 4, {"cutoff_prob": 0.9, "blank": 29, "blank_penalty": 0.5}),
    (300, 18, 63, 32, 2, {}),
    (2, 6, 5, 4096, 5, {}),
    (0, 4, 3, 2, 1, {}),
    (3, 0, 3, 2, 1, {}),
]


def log_probs(B, T, C, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, C, generator=g) * 3).log_softmax(-1).to(dtype)


def same(name, got, want, scores=()):
    for i, (a, b) in enumerate(zip(got, want)):
        a = a.cpu()
        ok = torch.allclose(a, b, rtol=1e-5, atol=1e-4, equal_nan=True) if i in scores else torch.equal(a, b)
        if not ok:
            sys.exit(f"{name}: output {i} differs between the GPU and the CPU")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    device = parser.parse_args().device

    for i, (B, T, C, beam, top, opts) in enumerate(BEAM_CASES):
        opts = dict(opts)
        lengths = opts.pop("lengths", None)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            x = log_probs(B, T, C, seed=i, dtype=dtype)
            want = crnn_fast.ctc_beam_search(x, lengths, beam, top, **opts)
            got = crnn_fast.ctc_beam_search(x.to(device), lengths, beam, top, **opts)
            same(f"ctc_beam_search case {i} {dtype}", got, want, scores=(2,))
        x = log_probs(B, T, C, seed=i).transpose(0, 1).contiguous().transpose(0, 1)  # time-major strides
        same(f"ctc_beam_search case {i} time-major", crnn_fast.ctc_beam_search(x.to(device), lengths, beam, top, **opts),
             crnn_fast.ctc_beam_search(x, lengths, beam, top, **opts), scores=(2,))

        # The same frames streamed in chunks of 1, 7 and the rest, then the trees
        # compacted: the beams read back as the CPU kernels leave them.
        x = log_probs(B, T, C, seed=i)
        cuts = [c for c in (1, 8) if c < T]
        results = []
        for side in (device, "cpu"):
            state = None
            for lo, hi in zip([0, *cuts], [*cuts, T]):
                rows = None if lengths is None else (torch.tensor(lengths) - lo).clamp(0, hi - lo)
                _, state = crnn_fast.ctc_beam_search_chunk(x[:, lo:hi].to(side), rows, beam, top, state=state, **opts)
            beams, nodes, used = torch.ops.crnn_fast.ctc_beam_state_compact(state.beams, state.progress, state.nodes,
                                                                             state.nodes_used)
            compacted = dataclasses.replace(state, beams=beams, nodes=nodes, nodes_used=used)
            results.append([*state.result(beam), *compacted.result(beam), state.progress])
        same(f"ctc_beam_search_chunk case {i}", *results, scores=(2, 6))

    for i, (B, T, C) in enumerate([(0, 5, 4), (3, 0, 4), (4, 1, 3), (16, 18, 63), (3, 40, 1100), (2, 70, 33)]):
        x = log_probs(B, T, C, seed=i).transpose(0, 1).contiguous().transpose(0, 1)
        lengths = torch.randint(0, T + 1, (B,), generator=torch.Generator().manual_seed(i))
        same(f"ctc_greedy_decode {B}x{T}x{C}", crnn_fast.ctc_greedy_decode(x.to(device), lengths),
             crnn_fast.ctc_greedy_decode(x, lengths))

    fold = torch.arange(62) % 26
    for i, (B, hw, rw, vocab) in enumerate([(200, 8, 5, 62), (0, 5, 5, 10), (7, 0, 4, 5), (40, 64, 64, 3),
                                            (40, 65, 63, 4), (30, 63, 130, 7), (4, 1500, 1100, 50)]):
        for dtype in (torch.int32, torch.int64):
            hyp, hl, ref, rl = random_pairs(B, hw, rw, vocab, seed=i, related=True, dtype=dtype)
            name = f"edit_distance {B}x{hw}x{rw} {dtype}"
            if not torch.equal(crnn_fast.edit_distance(hyp.to(device), hl, ref.to(device), rl).cpu(),
                               crnn_fast.edit_distance(hyp, hl, ref, rl)):
                sys.exit(f"{name}: differs between the GPU and the CPU")
            got = crnn_fast.sequence_metrics(hyp.to(device), hl, ref.to(device), rl, fold=fold)
            want = crnn_fast.sequence_metrics(hyp, hl, ref, rl, fold=fold)
            if any(got[k] != want[k] and not (math.isnan(got[k]) and math.isnan(want[k])) for k in want):
                sys.exit(f"sequence_metrics {B}x{hw}x{rw} {dtype}: differs between the GPU and the CPU")
    print("every kernel ran on", device, "and matched the CPU")


if __name__ == "__main__":
    main()
