"""CTC decoding throughput: crnn_fast against the decoders people use today, on the
same inputs in the same run. Anchors that are not installed are skipped."""

import numpy as np
import pytest
import torch
from conftest import peaky_log_probs

import crnn_fast

SHAPES = [(18, 63), (37, 63)]
BEAMS = [10, 32, 100]


def torch_greedy(log_probs, blank=0):
    """Batched best-path decoding with plain PyTorch ops (argmax, collapse, compact)."""
    best = log_probs.argmax(-1)
    prev = torch.nn.functional.pad(best[:, :-1], (1, 0), value=-1)
    keep = (best != blank) & (best != prev)
    lengths = keep.sum(1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    tokens = torch.gather(best, 1, order)
    tokens[torch.arange(best.shape[1]) >= lengths[:, None]] = -1
    return tokens, lengths


@pytest.mark.parametrize("frames, classes", SHAPES, ids=lambda v: str(v))
def test_greedy_crnn_fast(benchmark, sizes, frames, classes):
    lp = peaky_log_probs(sizes[0], frames, classes)
    benchmark.extra_info["sequences"] = sizes[0]
    tokens, lengths = benchmark(crnn_fast.ctc_greedy_decode, lp)
    ref_tokens, ref_lengths = torch_greedy(lp)
    assert torch.equal(lengths.long(), ref_lengths) and torch.equal(tokens.long(), ref_tokens)


@pytest.mark.parametrize("frames, classes", SHAPES, ids=lambda v: str(v))
def test_greedy_torch_ops(benchmark, sizes, frames, classes):
    lp = peaky_log_probs(sizes[0], frames, classes)
    benchmark.extra_info["sequences"] = sizes[0]
    benchmark(torch_greedy, lp)


@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("frames, classes", SHAPES, ids=lambda v: str(v))
def test_beam_crnn_fast_cpu(benchmark, sizes, frames, classes, beam):
    lp = peaky_log_probs(sizes[0], frames, classes)
    benchmark.extra_info["sequences"] = sizes[0]
    benchmark.pedantic(crnn_fast.ctc_beam_search, args=(lp,), kwargs=dict(beam_width=beam), rounds=1, iterations=1)


@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("frames, classes", SHAPES, ids=lambda v: str(v))
def test_beam_fast_ctc_decode(benchmark, sizes, frames, classes, beam):
    fcd = pytest.importorskip("fast_ctc_decode")
    lp = peaky_log_probs(sizes[1], frames, classes)
    probs = lp.exp().numpy().astype(np.float32)
    alphabet = "".join(chr(0x100 + c) for c in range(classes))  # blank first, one character per class
    benchmark.extra_info["sequences"] = sizes[1]

    def run():
        return [fcd.beam_search(p, alphabet, beam_size=beam, beam_cut_threshold=0.0)[0] for p in probs]

    texts = benchmark.pedantic(run, rounds=1, iterations=1)
    ours = crnn_fast.ctc_beam_search(lp, beam_width=beam)
    ours_text = ["".join(chr(0x100 + c) for c in row[:n]) for row, n in zip(ours.tokens[:, 0].tolist(), ours.lengths[:, 0].tolist())]
    benchmark.extra_info["top1_disagreements"] = sum(a != b for a, b in zip(texts, ours_text))


@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("frames, classes", SHAPES, ids=lambda v: str(v))
def test_beam_pyctcdecode(benchmark, sizes, frames, classes, beam):
    pyctcdecode = pytest.importorskip("pyctcdecode")
    lp = peaky_log_probs(sizes[1], frames, classes).numpy()
    decoder = pyctcdecode.build_ctcdecoder([""] + [chr(0x100 + c) for c in range(1, classes)])
    benchmark.extra_info["sequences"] = sizes[1]
    benchmark.pedantic(lambda: [decoder.decode(x, beam_width=beam) for x in lp], rounds=1, iterations=1)


def test_beam_speech_like_crnn_fast(benchmark, sizes):
    """A speech-sized vocabulary and length: C=1024, T=200, beam 32."""
    n = max(1, sizes[0] // 100)
    lp = peaky_log_probs(n, 200, 1024)
    benchmark.extra_info["sequences"] = n
    benchmark.pedantic(crnn_fast.ctc_beam_search, args=(lp,), kwargs=dict(beam_width=32), rounds=1, iterations=1)
