import itertools
import math
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from conftest import CUDA
from reference import ctc_beam_search_reference

import crnn_fast

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def random_log_probs(B, T, C, seed, peaky=2.0, dtype=torch.float32, device="cpu"):
    """Random log-softmax frames; ``peaky`` scales the logits (trained models are peaky)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, C, generator=g, dtype=torch.float64) * peaky).log_softmax(-1).to(dtype).to(device)


def assert_row_matches(result, b, log_probs, length, beam_width, top_paths, blank, tol=2e-4, **kwargs):
    """Row b of a BeamSearchResult against the reference: the same prefixes in the same
    order (allowing neighbours whose scores tie within tol to swap), scores to tol, and
    the same timesteps for the prefixes that match."""
    frames = log_probs[b, :length].double().cpu().tolist()
    want = ctc_beam_search_reference(frames, beam_width, blank, **kwargs)[:top_paths]
    T = log_probs.shape[1]
    for k in range(top_paths):
        n = int(result.lengths[b, k])
        got_labels = result.tokens[b, k, :n].tolist()
        got_score = float(result.scores[b, k])
        assert result.tokens[b, k, n:].eq(-1).all() and result.timesteps[b, k, n:].eq(-1).all()
        if k >= len(want):
            assert n == 0 and got_score == -math.inf
            continue
        labels, score, times = want[k]
        assert got_score == pytest.approx(score, abs=tol, rel=tol), (b, k)
        if got_labels != labels:  # only a near-tie may reorder prefixes
            others = [w for w in want if w[0] == got_labels]
            assert others and abs(others[0][1] - score) <= tol, (b, k, got_labels, labels)
            continue
        assert result.timesteps[b, k, :n].tolist() == times, (b, k)
        assert all(0 <= x < max(T, 1) for x in times)


def run(log_probs, lengths=None, **kwargs):
    return crnn_fast.ctc_beam_search(log_probs, lengths, **kwargs)


# (B, T, C, beam_width, top_paths): the CAPTCHA shape, C=2, T=1, beam wider than C,
# a large vocabulary, and more frames than a short label needs.
CASES = [(6, 18, 63, 10, 3), (5, 12, 2, 4, 2), (4, 1, 5, 3, 3), (4, 7, 4, 20, 5), (2, 30, 300, 8, 2), (3, 37, 11, 16, 16)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_reference(device, case):
    B, T, C, beam_width, top_paths = case
    log_probs = random_log_probs(B, T, C, seed=B * T + C, device=device)
    lengths = torch.randint(0, T + 1, (B,), generator=torch.Generator().manual_seed(C))
    lengths[0] = T
    result = run(log_probs, lengths, beam_width=beam_width, top_paths=top_paths)
    assert result.tokens.shape == (B, top_paths, T) and result.scores.dtype == torch.float32
    assert result.tokens.device == log_probs.device
    for b in range(B):
        assert_row_matches(result, b, log_probs, int(lengths[b]), beam_width, top_paths, 0)


@pytest.mark.parametrize("case", [(32, 30, 3, 6, 1.0), (32, 30, 4, 8, 2.0), (16, 25, 5, 10, 1.0)], ids=str)
def test_long_sequences_every_path(device, case):
    """Long sequences over few classes, every path compared: prefixes leave the beam
    while their extensions stay, a parent can come back as a new extension, and an
    extension that is already in the beam must merge with it."""
    B, T, C, beam_width, peaky = case
    log_probs = random_log_probs(B, T, C, seed=7, peaky=peaky, device=device)
    result = run(log_probs, beam_width=beam_width, top_paths=beam_width)
    for b in range(B):
        assert_row_matches(result, b, log_probs, T, beam_width, beam_width, 0)


@pytest.mark.parametrize("blank", [0, 2, 6])
def test_any_blank_and_blank_penalty(device, blank):
    log_probs = random_log_probs(4, 15, 7, seed=blank, device=device)
    result = run(log_probs, beam_width=6, top_paths=3, blank=blank, blank_penalty=0.7)
    for b in range(4):
        assert_row_matches(result, b, log_probs, 15, 6, 3, blank, blank_penalty=0.7)


@pytest.mark.parametrize("cutoff", [dict(cutoff_top_n=3), dict(cutoff_prob=0.8), dict(cutoff_top_n=5, cutoff_prob=0.6)])
def test_cutoffs_like_ctcdecode(device, cutoff):
    log_probs = random_log_probs(4, 16, 12, seed=7, peaky=1.0, device=device)
    result = run(log_probs, beam_width=8, top_paths=4, **cutoff)
    for b in range(4):
        assert_row_matches(result, b, log_probs, 16, 8, 4, 0, **cutoff)


def test_cutoff_prob_one_applies_no_probability_rule(device):
    """As in ctcdecode, cutoff_prob=1 prunes by cutoff_top_n only, even when rounding makes
    a frame's probabilities sum past 1 (here 1.35 on purpose)."""
    log_probs = torch.tensor([[[0.6, 0.6, 0.1, 0.05]]]).log().to(device)
    result = run(log_probs, beam_width=8, top_paths=4, cutoff_top_n=3, cutoff_prob=1.0)
    paths = {tuple(result.tokens[0, k, : result.lengths[0, k]].tolist()) for k in range(4) if result.scores[0, k] > -math.inf}
    assert paths == {(), (1,), (2,)}  # class 2 ranks third: kept; class 3 ranks fourth: cut


def exact_ctc_log_probs(frames, blank, max_len):
    """Every labelling up to max_len over the non-blank classes, with its exact CTC
    log-probability from torch's ctc_loss."""
    T, C = frames.shape
    labels = [c for c in range(C) if c != blank]
    out = {(): float(frames[:, blank].sum())}
    for n in range(1, max_len + 1):
        for seq in itertools.product(labels, repeat=n):
            loss = torch.nn.functional.ctc_loss(
                frames.unsqueeze(1), torch.tensor([seq]), [T], [n], blank=blank, reduction="none", zero_infinity=False
            )
            if math.isfinite(float(loss)):
                out[seq] = -float(loss)
    return out


@pytest.mark.parametrize("T, C, blank", [(1, 2, 0), (3, 3, 0), (5, 3, 1), (6, 4, 0), (4, 4, 3)])
def test_wide_beam_gives_exact_ctc_probabilities(device, T, C, blank):
    """With a beam wide enough to keep every prefix, the scores are the exact CTC
    probabilities of the labellings: the top-K must equal brute force."""
    frames = random_log_probs(1, T, C, seed=T * C + blank, peaky=1.0, dtype=torch.float64)[0]
    exact = sorted(exact_ctc_log_probs(frames, blank, T).items(), key=lambda kv: -kv[1])
    K = min(8, len(exact))
    result = run(frames.unsqueeze(0).to(device), beam_width=4096, top_paths=K, blank=blank)
    for k in range(K):
        n = int(result.lengths[0, k])
        assert tuple(result.tokens[0, k, :n].tolist()) == exact[k][0]
        assert float(result.scores[0, k]) == pytest.approx(exact[k][1], abs=1e-4)


def test_all_blank_and_empty_rows(device):
    log_probs = torch.full((3, 5, 4), -30.0, device=device)
    log_probs[:, :, 0] = 0.0  # blank certain everywhere
    result = run(log_probs, [5, 0, 2], beam_width=4, top_paths=2)
    assert result.lengths[:, 0].tolist() == [0, 0, 0]
    assert result.scores[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)
    assert result.scores[1, 1].item() == -math.inf  # a zero-length row has one prefix only


@pytest.mark.parametrize("beam_width", [1, 10, 64, 65])
def test_blank_dominated_frames_match_reference(device, beam_width):
    """Outputs like a trained model's: most frames nearly certain blanks, some label
    spikes. In most frames no extension can beat the worst kept prefix, which the CPU
    kernel decodes by putting the kept prefixes in order (beams up to 64); 65 takes
    the general path on the same kind of input."""
    B, T, C = 2, 37, 63
    g = torch.Generator().manual_seed(beam_width)
    logits = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    logits[:, :, 0] += 12.0
    spikes = 16.0 * (torch.rand(B, T, generator=g) < 0.15).double()
    logits.scatter_add_(2, torch.randint(1, C, (B, T, 1), generator=g), spikes.unsqueeze(-1))
    log_probs = logits.log_softmax(-1).float().to(device)
    top_paths = min(beam_width, 5)
    result = run(log_probs, beam_width=beam_width, top_paths=top_paths)
    for b in range(B):
        assert_row_matches(result, b, log_probs, T, beam_width, top_paths, 0)


def test_top_path_agrees_with_greedy_on_peaky_outputs(device):
    log_probs = random_log_probs(50, 18, 63, seed=3, peaky=8.0, device=device)
    greedy = crnn_fast.ctc_greedy_decode(log_probs)
    beam = run(log_probs, beam_width=10)
    assert torch.equal(beam.lengths[:, 0], greedy.lengths)
    assert torch.equal(beam.tokens[:, 0], greedy.tokens)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dtypes(device, dtype):
    log_probs = random_log_probs(4, 10, 6, seed=1, dtype=dtype, device=device)
    result = run(log_probs, beam_width=5, top_paths=2)
    for b in range(4):  # the reference sees the same rounded values
        assert_row_matches(result, b, log_probs.float(), 10, 5, 2, 0, tol=1e-3)


def test_non_contiguous_input(device):
    base = random_log_probs(12, 9, 5, seed=2, device=device)
    time_major = base.transpose(0, 1).contiguous().transpose(0, 1)
    assert not time_major.is_contiguous()
    want, got = run(base, beam_width=4, top_paths=2), run(time_major, beam_width=4, top_paths=2)
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_same_results_without_avx2(tmp_path):
    """The CPU kernel gathers and ranks classes with AVX2 where the CPU has it; with
    ATEN_CPU_CAPABILITY=default (as for torch's own kernels) it runs plain loops. Both
    must give the same bits, on inputs that take every branch of the two: C below, at
    and above 8 lanes, ties, -inf classes, the cutoffs."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip(f"no AVX2 path on this CPU (torch's capability: {torch.backends.cpu.get_cpu_capability()})")
    cases = []
    for C, (beam, top), cutoff in itertools.product([5, 8, 21, 63, 300], [(1, 1), (10, 3), (40, 8)],
                                                    [{}, dict(cutoff_top_n=4), dict(cutoff_prob=0.9)]):
        lp = random_log_probs(8, 20, C, seed=C * beam, peaky=3.0)
        lp[:2] = (lp[:2] * 2).round() / 2
        lp[2:4] = lp[2:4].masked_fill(torch.rand(2, 20, C, generator=torch.Generator().manual_seed(C)) < 0.3,
                                      -math.inf)
        cases.append((lp, dict(beam_width=beam, top_paths=top, **cutoff)))
    torch.save(cases, tmp_path / "cases.pt")  # made here: torch's own kernels round differently without AVX2
    decode = ("import sys, torch, crnn_fast; torch.save([tuple(crnn_fast.ctc_beam_search(lp, **kw)) "
              "for lp, kw in torch.load(sys.argv[1])], sys.argv[2])")
    results = {}
    for capability in ("default", None):
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        out = tmp_path / f"{capability}.pt"
        subprocess.run([sys.executable, "-c", decode, str(tmp_path / "cases.pt"), str(out)], env=env, check=True)
        results[capability] = torch.load(out)
    for want, got in zip(results["default"], results[None], strict=True):
        for a, b in zip(want, got, strict=True):
            assert torch.equal(a, b)


def draw_inputs(data, B, T, C):
    """Per-row lengths and (B, T, C) log-probs of a drawn seed and peakiness, for the
    property tests."""
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    seed = data.draw(st.integers(0, 2**20))
    return lengths, random_log_probs(B, T, C, seed=seed, peaky=data.draw(st.sampled_from([0.5, 2.0, 6.0])))


@given(
    B=st.integers(0, 3),
    T=st.integers(0, 12),
    C=st.integers(2, 12),
    beam_width=st.integers(1, 12),
    data=st.data(),
)
def test_property_matches_reference_cpu(B, T, C, beam_width, data):
    """Against the reference, with and without ctcdecode's pruning (cutoff_top_n: a
    class's rank, ties to the earlier class; cutoff_prob), on quantised log-probs (ties)
    and with classes at -inf."""
    top_paths = data.draw(st.integers(1, beam_width))
    blank = data.draw(st.integers(0, C - 1))
    cutoff = dict(cutoff_top_n=data.draw(st.none() | st.integers(1, C)),
                  cutoff_prob=data.draw(st.sampled_from([1.0, 0.9, 0.5])))
    lengths, log_probs = draw_inputs(data, B, T, C)
    if data.draw(st.booleans()):  # ties
        log_probs = (log_probs * 2).round() / 2
    if data.draw(st.booleans()):  # impossible classes
        impossible = torch.rand(log_probs.shape, generator=torch.Generator().manual_seed(C)) < 0.2
        log_probs = log_probs.masked_fill(impossible, -math.inf)
    result = run(log_probs, lengths, beam_width=beam_width, top_paths=top_paths, blank=blank, **cutoff)
    for b in range(B):
        assert_row_matches(result, b, log_probs, lengths[b], beam_width, top_paths, blank, **cutoff)


@CUDA
@given(
    B=st.integers(1, 40),
    T=st.integers(1, 60),
    C=st.integers(2, 300),
    beam_width=st.integers(1, 40),
    data=st.data(),
)
def test_cuda_matches_cpu(B, T, C, beam_width, data):
    """The CUDA kernel runs the CPU kernel's code: the same prefixes, timesteps and
    (to float rounding) scores, under every option."""
    options = dict(
        top_paths=data.draw(st.integers(1, beam_width)),
        blank=data.draw(st.integers(0, C - 1)),
        blank_penalty=data.draw(st.sampled_from([0.0, 0.7])),
        cutoff_top_n=data.draw(st.sampled_from([None, 1, 5, 40])),
        cutoff_prob=data.draw(st.sampled_from([1.0, 0.99, 0.5])),
    )
    lengths, log_probs = draw_inputs(data, B, T, C)
    want = run(log_probs, lengths, beam_width=beam_width, **options)
    got = run(log_probs.cuda(), lengths, beam_width=beam_width, **options)
    for name in ("tokens", "lengths", "timesteps"):
        assert torch.equal(getattr(got, name).cpu(), getattr(want, name)), name
    torch.testing.assert_close(got.scores.cpu(), want.scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_opcheck(device, dtype):
    log_probs = random_log_probs(3, 8, 6, seed=4, dtype=dtype, device=device)
    lengths = torch.tensor([8, 0, 5], device=device)
    torch.library.opcheck(torch.ops.crnn_fast.ctc_beam_search.default, (log_probs, lengths, 4, 2, 0, 0.0, 6, 1.0))


def test_torch_compile_fullgraph(device):
    def decode(logits):
        return crnn_fast.ctc_beam_search(logits.log_softmax(-1), beam_width=5, top_paths=2)

    logits = random_log_probs(4, 10, 7, seed=5, device=device)
    got, want = torch.compile(decode, fullgraph=True)(logits), decode(logits)
    assert torch.equal(got.tokens, want.tokens) and torch.equal(got.lengths, want.lengths)
    assert torch.equal(got.timesteps, want.timesteps)
    torch.testing.assert_close(got.scores, want.scores)  # inductor's log_softmax may differ in the last bit


def test_ctcdecode_compatible_decoder(device):
    labels = ["_"] + list("abcdefg")
    probs = random_log_probs(5, 14, 8, seed=9, device=device).exp()
    seq_lens = torch.tensor([14, 3, 0, 14, 9], dtype=torch.int32)
    decoder = crnn_fast.CTCBeamDecoder(labels, beam_width=6, num_processes=2, blank_id=0, cutoff_top_n=40)
    beam_results, beam_scores, timesteps, out_lens = decoder.decode(probs, seq_lens)
    assert beam_results.shape == (5, 6, 14) and timesteps.shape == (5, 6, 14)
    assert beam_scores.shape == (5, 6) and out_lens.shape == (5, 6)
    assert beam_results.dtype == timesteps.dtype == out_lens.dtype == torch.int32
    direct = crnn_fast.ctc_beam_search(probs.log(), seq_lens, beam_width=6, top_paths=6)
    assert torch.equal(beam_results, direct.tokens) and torch.equal(out_lens, direct.lengths)
    assert torch.allclose(beam_scores, -direct.scores)  # ctcdecode's convention: p = 1 / exp(score)
    with_logs = crnn_fast.CTCBeamDecoder(labels, beam_width=6, log_probs_input=True).decode(probs.log(), seq_lens)
    assert torch.equal(with_logs[0], beam_results)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(model_path="lm.arpa"), ValueError, "model_path: KenLM language models are not supported"),
        (dict(labels="abc"), TypeError, "labels must be a non-empty sequence"),
        (dict(num_processes=0), ValueError, "num_processes must be an int >= 1"),
        (dict(blank_id=9), ValueError, r"blank_id must be in \[0, len\(labels\)\)"),
    ],
)
def test_ctcdecode_decoder_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        crnn_fast.CTCBeamDecoder(**({"labels": ["_", "a", "b"]} | kwargs))
