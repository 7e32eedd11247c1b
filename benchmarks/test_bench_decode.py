"""CTC decoding throughput: crnn_fast against the decoders people use today, on the
same inputs in the same run. Anchors that are not installed are skipped with the
reason. Each anchor row also records how often its top-1 labelling differs from
crnn_fast's and, where it does, which of the two labellings is more probable (by
``torch.nn.functional.ctc_loss``, the exact sum over alignments)."""

import itertools

import numpy as np
import pytest
import torch
from conftest import DEVICES, ROUNDS, anchor_pool, peaky_log_probs, record, synchronized

import crnn_fast

SHAPES = [(18, 63), (37, 63)]
BEAMS = [10, 32, 100]
SPEECH = (200, 1024)  # frames, classes: a speech-sized vocabulary and length
SPEECH_BEAMS = [10, 32]
BATCHES = [1, 64, 1024, 16384]
TORCHAUDIO_BATCH = 10_000  # rows per cuda_ctc_decoder call


def shape_id(value):
    return f"T{value[0]}-C{value[1]}" if isinstance(value, tuple) else str(value)


def torch_greedy(log_probs, blank=0):
    """Batched best-path decoding with plain PyTorch ops (argmax, collapse, compact)."""
    best = log_probs.argmax(-1)
    prev = torch.nn.functional.pad(best[:, :-1], (1, 0), value=-1)
    keep = (best != blank) & (best != prev)
    lengths = keep.sum(1)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    tokens = torch.gather(best, 1, order)
    tokens[torch.arange(best.shape[1], device=best.device) >= lengths[:, None]] = -1
    return tokens, lengths


def top1(result):
    return [row[:n] for row, n in zip(result.tokens[:, 0].tolist(), result.lengths[:, 0].tolist())]


def labelling_log_prob(log_probs, labels):
    """log P(labels | log_probs) summed over all alignments; log_probs (T, C)."""
    if not labels:
        return log_probs[:, 0].sum().item()
    loss = torch.nn.functional.ctc_loss(log_probs[:, None].double(), torch.tensor([labels]), [log_probs.shape[0]],
                                        [len(labels)], reduction="sum")
    return -loss.item()


def compare_top1(benchmark, log_probs, theirs, beam):
    """Records where an anchor's top-1 labellings differ from crnn_fast's, and which is more probable."""
    ours = top1(crnn_fast.ctc_beam_search(log_probs, beam_width=beam))
    differ = better = worse = 0
    for x, a, b in zip(log_probs, ours, theirs):
        if a != b:
            gap = labelling_log_prob(x, a) - labelling_log_prob(x, b)
            differ, better, worse = differ + 1, better + (gap > 1e-6), worse + (gap < -1e-6)
    benchmark.extra_info.update(top1_disagreements=differ, crnn_fast_more_probable=better, anchor_more_probable=worse)


# --------------------------------------------------------------------- greedy

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_greedy_crnn_fast(benchmark, sizes, shape, device):
    lp = peaky_log_probs(sizes[0], *shape).to(device)
    record(benchmark, f"greedy {shape_id(shape)} {device}", sizes[0], library="crnn_fast", device=device)
    tokens, lengths = benchmark(synchronized(crnn_fast.ctc_greedy_decode, device), lp)
    ref_tokens, ref_lengths = torch_greedy(lp)
    assert torch.equal(lengths.long(), ref_lengths) and torch.equal(tokens.long(), ref_tokens)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_greedy_torch_ops(benchmark, sizes, shape, device):
    lp = peaky_log_probs(sizes[0], *shape).to(device)
    record(benchmark, f"greedy {shape_id(shape)} {device}", sizes[0], library="torch ops", device=device)
    benchmark(synchronized(torch_greedy, device), lp)


# ------------------------------------------------------------ beam, CAPTCHA-sized

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_beam_crnn_fast(benchmark, sizes, shape, beam, device):
    run_crnn_fast(benchmark, peaky_log_probs(sizes[0], *shape).to(device), f"beam {beam} {shape_id(shape)}", beam)


@pytest.mark.parametrize("device", DEVICES)
def test_beam_crnn_fast_cutoff(benchmark, sizes, device):
    """With ctcdecode's default pruning, as CTCBeamDecoder applies it (cutoff_top_n=40)."""
    lp = peaky_log_probs(sizes[0], 37, 63).to(device)
    run_crnn_fast(benchmark, lp, "beam 10 T37-C63, cutoff_top_n=40", 10, cutoff_top_n=40)


def run_crnn_fast(benchmark, lp, group, beam, **options):
    """Times crnn_fast's beam search of ``lp`` (N, T, C) log-probs, on their device, as a
    row of comparison ``group``."""
    device = lp.device.type
    record(benchmark, group, len(lp), library=f"crnn_fast {device}", device=device, beam=beam, **options)
    run = synchronized(crnn_fast.ctc_beam_search, device)
    run(lp[:64], beam_width=beam, **options)  # warm-up (thread pool, CUDA context)
    benchmark.pedantic(run, args=(lp,), kwargs=dict(beam_width=beam, **options), rounds=ROUNDS, iterations=1)


# The anchors decode one sequence per Python call; these run on a worker's share of
# the sequences (numpy (N, T, C) float32 arrays: probabilities for fast-ctc-decode,
# log-probabilities for the others, converted before timing) and return token lists.

def fast_ctc_decode_share(probs, beam):
    import fast_ctc_decode

    alphabet = "".join(chr(0x100 + c) for c in range(probs.shape[2]))  # blank first, a character per class
    return [[ord(ch) - 0x100 for ch in fast_ctc_decode.beam_search(p, alphabet, beam_size=beam,
                                                                   beam_cut_threshold=0.0)[0]]
            for p in probs]


def flashlight_share(log_probs, beam):
    """Top-1 labelling per sequence: the path without its start/end tokens, collapsed."""
    from flashlight.lib.text import decoder

    frames, classes = log_probs.shape[1:]
    options = decoder.LexiconFreeDecoderOptions(
        beam_size=beam, beam_size_token=classes, beam_threshold=1e9, lm_weight=0.0, sil_score=0.0, log_add=True,
        criterion_type=decoder.CriterionType.CTC)
    # No language model; the silence token is the blank, scored 0.
    flashlight = decoder.LexiconFreeDecoder(options, decoder.ZeroLM(), 0, 0, [])
    out = []
    for x in np.ascontiguousarray(log_probs):
        path = flashlight.decode(x.ctypes.data, frames, classes)[0].tokens[1:-1]
        out.append([t for t, _ in itertools.groupby(path) if t != 0])
    return out


def pyctcdecode_share(log_probs, beam):
    import pyctcdecode

    decoder = pyctcdecode.build_ctcdecoder([""] + [chr(0x100 + c) for c in range(1, log_probs.shape[2])])
    return [[ord(ch) - 0x100 for ch in decoder.decode(x, beam_width=beam)] for x in log_probs]


# name: (module, share function, whether it takes probabilities)
ANCHORS = {"fast-ctc-decode": ("fast_ctc_decode", fast_ctc_decode_share, True),
           "flashlight-text": ("flashlight.lib.text.decoder", flashlight_share, False),
           "pyctcdecode": ("pyctcdecode", pyctcdecode_share, False)}


def run_anchor(benchmark, name, lp, group, beam):
    """Times anchor ``name`` decoding ``lp`` (N, T, C) log-probs on the worker processes
    as a row of comparison ``group``, and compares its top-1 labellings with crnn_fast's."""
    module, share, takes_probs = ANCHORS[name]
    pytest.importorskip(module)
    inputs = (lp.exp() if takes_probs else lp).contiguous().numpy()
    record(benchmark, group, len(lp), library=name, device="cpu", beam=beam)
    with anchor_pool(inputs) as run:
        labels = benchmark.pedantic(run, args=(share, beam), rounds=ROUNDS, iterations=1)
    compare_top1(benchmark, lp, labels, beam)


@pytest.mark.parametrize("anchor", list(ANCHORS))
@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_beam_anchor(benchmark, sizes, shape, beam, anchor):
    run_anchor(benchmark, anchor, peaky_log_probs(sizes[1], *shape), f"beam {beam} {shape_id(shape)}", beam)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_beam_torchaudio_cuda(benchmark, sizes, shape, beam):
    ta_decoder = pytest.importorskip("torchaudio.models.decoder")
    lp = peaky_log_probs(sizes[0], *shape).cuda()
    lengths = torch.full((sizes[0],), shape[0], dtype=torch.int32, device="cuda")
    decoder = ta_decoder.cuda_ctc_decoder([str(c) for c in range(shape[1])], nbest=1, beam_size=beam,
                                          blank_skip_threshold=1.0)
    record(benchmark, f"beam {beam} {shape_id(shape)}", sizes[0], library="torchaudio cuda_ctc_decoder",
           device="cuda", beam=beam, variant=f"batches of {TORCHAUDIO_BATCH}")

    def decode_all():  # one call on 100k rows aborts the process (torchaudio 2.11, H100)
        return [h for lo in range(0, sizes[0], TORCHAUDIO_BATCH)
                for h in decoder(lp[lo:lo + TORCHAUDIO_BATCH], lengths[lo:lo + TORCHAUDIO_BATCH])]

    decoder(lp[:64], lengths[:64])  # warm-up
    hyps = benchmark.pedantic(synchronized(decode_all, "cuda"), rounds=ROUNDS, iterations=1)
    compare_top1(benchmark, lp[: sizes[1]].cpu(), [list(h[0].tokens) for h in hyps[: sizes[1]]], beam)


# ------------------------------------------------------------------ batch sizes

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
def test_beam_batch_size(benchmark, sizes, batch, device):
    """Throughput against the batch size (T=37, C=63, beam 10)."""
    batch = min(batch, sizes[0])
    lp = peaky_log_probs(batch, 37, 63).to(device)
    record(benchmark, f"batch size {device}", batch, library=f"crnn_fast {device}", device=device, beam=10,
           batch=batch, variant=f"batch {batch}")
    benchmark(synchronized(crnn_fast.ctc_beam_search, device), lp, beam_width=10)


# ---------------------------------------------------------- beam, speech-sized

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("beam", SPEECH_BEAMS)
def test_speech_crnn_fast(benchmark, sizes, beam, device):
    n = max(1, sizes[0] // 100)
    lp = peaky_log_probs(n, *SPEECH).to(device)
    record(benchmark, f"beam {beam} {shape_id(SPEECH)}", n, library=f"crnn_fast {device}", device=device, beam=beam)
    benchmark.pedantic(synchronized(crnn_fast.ctc_beam_search, device), args=(lp,), kwargs=dict(beam_width=beam),
                       rounds=ROUNDS, iterations=1)


@pytest.mark.parametrize("beam", SPEECH_BEAMS)
def test_speech_fast_ctc_decode(benchmark, sizes, beam):
    if beam > 10:
        # Measured on fast-ctc-decode 0.3.7: at beam 32 with C=1024, T=200 one call asks
        # for 8.6 GB (beam_cut_threshold 0 or 1e-4) and aborts the process.
        pytest.skip("fast-ctc-decode aborts on a failed 8.6 GB allocation at beam 32 with C=1024, T=200")
    n = max(1, sizes[1] // 200)  # seconds per sequence
    run_anchor(benchmark, "fast-ctc-decode", peaky_log_probs(n, *SPEECH), f"beam {beam} {shape_id(SPEECH)}", beam)


@pytest.mark.parametrize("beam", SPEECH_BEAMS)
def test_speech_flashlight_text(benchmark, sizes, beam):
    n = max(1, sizes[1] // 100)
    run_anchor(benchmark, "flashlight-text", peaky_log_probs(n, *SPEECH), f"beam {beam} {shape_id(SPEECH)}", beam)


# ------------------------------------------------------------------- streaming

STREAMS, CHUNK = 256, 8  # streams decoded side by side, frames per chunk


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("api", ["whole", "ctc_beam_search_chunk", "OnlineCTCBeamDecoder"])
def test_stream_crnn_fast(benchmark, sizes, api, device):
    """A batch of streams decoded chunk by chunk (time per chunk: the row's time over its
    chunks), against decoding the whole streams at once; the streamed top beams are
    checked equal to the whole ones."""
    n = min(STREAMS, sizes[0])
    lp = peaky_log_probs(n, *SPEECH).to(device)
    chunks = [lp[:, lo:lo + CHUNK] for lo in range(0, lp.shape[1], CHUNK)]
    variant = {} if api == "whole" else dict(variant=f"{api}, {len(chunks)} chunks", chunks=len(chunks))
    record(benchmark, f"stream {shape_id(SPEECH)}, beam 10, chunks of {CHUNK}", n, library=f"crnn_fast {device}",
           device=device, beam=10, **variant)
    decoder = crnn_fast.OnlineCTCBeamDecoder([str(c) for c in range(SPEECH[1])], beam_width=10,
                                             cutoff_top_n=SPEECH[1], num_processes=torch.get_num_threads(),
                                             log_probs_input=True)

    def stream_low_level():
        result, state = None, None
        for chunk in chunks:
            result, state = crnn_fast.ctc_beam_search_chunk(chunk, beam_width=10, state=state)
        return result.tokens[:, 0], result.lengths[:, 0]

    def stream_online():
        states = [crnn_fast.DecoderState(decoder) for _ in range(n)]
        for i, chunk in enumerate(chunks):
            beams, _, _, lens = decoder.decode(chunk, states, [i == len(chunks) - 1] * n)
        return beams[:, 0], lens[:, 0]

    def whole():
        result = crnn_fast.ctc_beam_search(lp, beam_width=10)
        return result.tokens[:, 0], result.lengths[:, 0]

    run = {"whole": whole, "ctc_beam_search_chunk": stream_low_level, "OnlineCTCBeamDecoder": stream_online}[api]
    tokens, lengths = benchmark.pedantic(synchronized(run, device), rounds=ROUNDS, iterations=1)
    want_tokens, want_lengths = whole()
    assert torch.equal(lengths, want_lengths) and torch.equal(tokens, want_tokens[:, : tokens.shape[1]])
