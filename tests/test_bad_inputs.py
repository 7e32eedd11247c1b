"""Bad arguments get an exception that names the argument — never a crash or garbage."""

import pytest
import torch

import crnn_fast

LP = torch.randn(3, 6, 5).log_softmax(-1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(log_probs=LP.numpy()), TypeError, "log_probs must be a torch.Tensor"),
        (dict(log_probs=LP[0]), ValueError, r"log_probs must be 3-D"),
        (dict(log_probs=LP.unsqueeze(0)), ValueError, r"log_probs must be 3-D"),
        (dict(log_probs=LP.to(torch.int32)), TypeError, "log_probs must be float"),
        (dict(log_probs=LP.to(torch.complex64)), TypeError, "log_probs must be float"),
        (dict(log_probs=LP.to("meta")), ValueError, "log_probs must be on a CPU or CUDA device"),
        (dict(log_probs=LP[:, :, :0]), ValueError, "log_probs must have at least one class"),
        (dict(blank=5), ValueError, r"blank must be in \[0, C\) = \[0, 5\), got 5"),
        (dict(blank=-1), ValueError, r"blank must be in \[0, C\)"),
        (dict(blank=1.0), TypeError, "blank must be an int"),
        (dict(blank=True), TypeError, "blank must be an int"),
        (dict(input_lengths=torch.tensor([6, -1, 2])), ValueError, r"input_lengths\[1\] = -1 is outside \[0, T=6\]"),
        (dict(input_lengths=torch.tensor([6, 7, 2])), ValueError, r"input_lengths\[1\] = 7 is outside \[0, T=6\]"),
        (dict(input_lengths=torch.tensor([6, 6])), ValueError, r"input_lengths must have shape \(B,\) = \(3,\)"),
        (dict(input_lengths=torch.tensor([[6, 6, 6]])), ValueError, r"input_lengths must have shape"),
        (dict(input_lengths=torch.tensor([6.0, 6.0, 6.0])), TypeError, "input_lengths must hold integers"),
        (dict(input_lengths=torch.tensor([True, True, True])), TypeError, "input_lengths must hold integers"),
        (dict(input_lengths="abc"), TypeError, "input_lengths must be a tensor or a sequence of ints"),
        (dict(input_lengths=[2**40, 1, 1]), ValueError, r"input_lengths\[0\] = 1099511627776 is outside"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_greedy_decode_rejects(kwargs, error, match):
    args = dict(log_probs=LP) | kwargs
    with pytest.raises(error, match=match):
        crnn_fast.ctc_greedy_decode(**args)


@pytest.mark.parametrize(
    "lengths, blank, match",
    [
        (torch.tensor([6, 9, 1]), 0, r"input_lengths\[1\] = 9 is outside"),
        (torch.tensor([6, -3, 1]), 0, r"input_lengths\[1\] = -3 is outside"),
        (torch.tensor([6, 6]), 0, r"input_lengths must have shape"),
        (torch.tensor([6, 6, 6], dtype=torch.int32), 0, "input_lengths must be int64"),
        (torch.tensor([6, 6, 6]), 7, r"blank must be in \[0, 5\)"),
    ],
)
def test_kernel_checks_direct_op_calls(lengths, blank, match):
    """Callers who bypass the Python wrapper still get errors, not out-of-bounds reads."""
    with pytest.raises(RuntimeError, match=match):
        torch.ops.crnn_fast.ctc_greedy_decode(LP, lengths, blank)


HYP = torch.tensor([[1, 2, 3], [4, 5, -1]])
REF = torch.tensor([[1, 2], [4, 4]])


@pytest.mark.parametrize("op", ["edit_distance", "sequence_metrics"])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(hyp=HYP.tolist()), TypeError, "hyp must be a torch.Tensor"),
        (dict(hyp=HYP[0]), ValueError, r"hyp must be 2-D"),
        (dict(ref=REF.unsqueeze(0)), ValueError, r"ref must be 2-D"),
        (dict(hyp=HYP.float()), TypeError, "hyp must hold integer token ids"),
        (dict(ref=REF.bool()), TypeError, "ref must hold integer token ids"),
        (dict(ref=REF[:1]), ValueError, "hyp and ref must have the same batch size"),
        (dict(ref=REF.to("meta")), ValueError, "ref must be on a CPU or CUDA device"),
        (dict(hyp_lengths=[3, 4]), ValueError, r"hyp_lengths\[1\] = 4 is outside \[0, T=3\]"),
        (dict(ref_lengths=[-1, 2]), ValueError, r"ref_lengths\[0\] = -1 is outside"),
        (dict(ref_lengths=[2]), ValueError, r"ref_lengths must have shape \(B,\) = \(2,\)"),
        (dict(hyp_lengths=torch.tensor([1.0, 2.0])), TypeError, "hyp_lengths must hold integers"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_pair_ops_reject(op, kwargs, error, match):
    args = dict(hyp=HYP, hyp_lengths=[3, 2], ref=REF, ref_lengths=[2, 2]) | kwargs
    with pytest.raises(error, match=match):
        getattr(crnn_fast, op)(**args)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(fold=[[0, 1]]), ValueError, r"fold must be 1-D \(V,\)"),
        (dict(fold="ab"), TypeError, "fold must be a tensor or a sequence of token ids"),
        (dict(fold=[0.5, 1.0]), TypeError, "fold must hold integer token ids"),
        (dict(return_distances="yes"), TypeError, "return_distances must be a bool"),
    ],
)
def test_sequence_metrics_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        crnn_fast.sequence_metrics(HYP, None, REF, None, **kwargs)


@pytest.mark.parametrize(
    "args, match",
    [
        ((HYP, torch.tensor([3, 9]), REF, torch.tensor([2, 2])), r"hyp_lengths\[1\] = 9 is outside"),
        ((HYP, torch.tensor([3, 2]), REF, torch.tensor([2, -2])), r"ref_lengths\[1\] = -2 is outside"),
        ((HYP, torch.tensor([3, 2]), REF.int(), torch.tensor([2, 2])), "same dtype"),
        ((HYP.float(), torch.tensor([3, 2]), REF.float(), torch.tensor([2, 2])), "hyp must be int32 or int64"),
    ],
)
def test_pair_kernels_check_direct_op_calls(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.crnn_fast.edit_distance(*args)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(beam_width=0), ValueError, r"beam_width must be in \[1, 4096\], got 0"),
        (dict(beam_width=10**9), ValueError, r"beam_width must be in \[1, 4096\]"),
        (dict(beam_width=2.5), TypeError, "beam_width must be an int"),
        (dict(beam_width=4, top_paths=5), ValueError, r"top_paths must be in \[1, 4\], got 5"),
        (dict(top_paths=0), ValueError, "top_paths must be in"),
        (dict(blank=5), ValueError, r"blank must be in \[0, C\)"),
        (dict(blank_penalty=float("nan")), ValueError, "blank_penalty must be finite"),
        (dict(blank_penalty="1"), TypeError, "blank_penalty must be a float"),
        (dict(cutoff_top_n=0), ValueError, "cutoff_top_n must be >= 1"),
        (dict(cutoff_prob=0.0), ValueError, r"cutoff_prob must be in \(0, 1\]"),
        (dict(cutoff_prob=1.5), ValueError, r"cutoff_prob must be in \(0, 1\]"),
        (dict(input_lengths=[6, 7, 1]), ValueError, r"input_lengths\[1\] = 7 is outside"),
        (dict(log_probs=LP.int()), TypeError, "log_probs must be float"),
        (dict(log_probs=LP[0]), ValueError, "log_probs must be 3-D"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_beam_search_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        crnn_fast.ctc_beam_search(**(dict(log_probs=LP) | kwargs))


BEAM_LP = torch.randn(3, 6, 21).log_softmax(-1)  # 21 classes: 8 at a time, and a tail


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("t, c", [(0, 0), (4, 1), (5, 20)], ids=str)
@pytest.mark.parametrize("layout", ["float32", "float16", "strided"])
@pytest.mark.parametrize("cutoff", [None, 5])
def test_beam_search_rejects_nan_and_posinf(device, value, t, c, layout, cutoff):
    bad = BEAM_LP.clone()
    bad[2, t, c] = value
    bad = bad.half() if layout == "float16" else bad
    bad = bad.transpose(1, 2).contiguous().transpose(1, 2) if layout == "strided" else bad
    with pytest.raises(ValueError, match=rf"log_probs\[2, {t}, {c}\] is .*must not be NaN or \+inf"):
        crnn_fast.ctc_beam_search(bad.to(device), cutoff_top_n=cutoff)


def test_beam_search_reads_no_frame_past_a_row_length(device):
    lengths = torch.tensor([6, 3, 0])
    padded = BEAM_LP.clone()
    padded[1, 3:] = float("nan")
    padded[2] = float("inf")
    want = crnn_fast.ctc_beam_search(BEAM_LP.to(device), lengths, top_paths=2)
    got = crnn_fast.ctc_beam_search(padded.to(device), lengths, top_paths=2)
    for a, b in zip(want, got):
        assert torch.equal(a, b)


def test_beam_kernel_gives_nan_scores_to_a_row_with_nan(device):
    """Called directly (or under torch.compile), the op flags the row, not the batch."""
    bad = BEAM_LP.clone().to(device)
    bad[1, 2, 7] = float("nan")
    want = crnn_fast.ctc_beam_search(BEAM_LP.to(device), top_paths=2)
    tokens, lengths, scores, timesteps = torch.ops.crnn_fast.ctc_beam_search(bad, torch.full((3,), 6), 10, 2, 0, 0.0,
                                                                             21, 1.0)
    assert scores[1].isnan().all() and lengths[1].eq(0).all() and tokens[1].eq(-1).all()
    for got, ok in zip((tokens, lengths, scores, timesteps), want):
        assert torch.equal(got[[0, 2]], ok[[0, 2]])


@pytest.mark.parametrize(
    "args, match",
    [
        ((LP, torch.full((3,), 6), 0, 1, 0, 0.0, 5, 1.0), r"beam_width must be in \[1, 4096\]"),
        ((LP, torch.full((3,), 6), 3, 4, 0, 0.0, 5, 1.0), r"top_paths must be in \[1, beam_width\]"),
        ((LP, torch.full((3,), 9), 3, 1, 0, 0.0, 5, 1.0), r"input_lengths\[0\] = 9 is outside"),
        ((LP, torch.full((3,), 6), 3, 1, 0, 0.0, 5, 0.0), r"cutoff_prob must be in \(0, 1\]"),
        ((torch.randn(1, 100_000, 4), torch.full((1,), 100_000), 4096, 1, 0, 0.0, 4, 1.0), "beam_width \\* T is too large"),
    ],
)
def test_beam_kernel_checks_direct_op_calls(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.crnn_fast.ctc_beam_search(*args)


@pytest.mark.parametrize("B, T", [(0, 5), (3, 0), (0, 0)])
def test_empty_batches_and_frames_give_empty_results(B, T):
    lp = torch.randn(B, T, 4).log_softmax(-1)
    tokens, lengths = crnn_fast.ctc_greedy_decode(lp)
    assert tokens.shape == (B, T) and lengths.shape == (B,) and not lengths.any()
    beams = crnn_fast.ctc_beam_search(lp, beam_width=3, top_paths=2)
    assert beams.tokens.shape == (B, 2, T) and beams.timesteps.shape == (B, 2, T) and not beams.lengths.any()
    if B:  # no frames: the empty labelling, with probability 1
        assert beams.scores[:, 0].eq(0).all() and beams.scores[:, 1].eq(float("-inf")).all()
    hyp = torch.zeros(B, T, dtype=torch.int32)
    lengths = torch.full((B,), T)
    assert crnn_fast.edit_distance(hyp, lengths, hyp, lengths).shape == (B,)


def test_expanded_stride_zero_inputs_match_contiguous():
    row = torch.randn(1, 9, 6).log_softmax(-1)
    expanded, dense = row.expand(5, 9, 6), row.repeat(5, 1, 1)
    assert expanded.stride(0) == 0
    for fn in (crnn_fast.ctc_greedy_decode, lambda x: crnn_fast.ctc_beam_search(x, beam_width=4, top_paths=2)):
        for a, b in zip(fn(expanded), fn(dense)):
            assert torch.equal(a, b)
    seq = torch.randint(0, 5, (1, 70), dtype=torch.int32)
    lengths = torch.tensor([70, 3, 0, 64])
    assert torch.equal(crnn_fast.edit_distance(seq.expand(4, 70), lengths, seq.flip(1).expand(4, 70), lengths),
                       crnn_fast.edit_distance(seq.repeat(4, 1), lengths, seq.flip(1).repeat(4, 1), lengths))


def test_inputs_of_2_pow_31_elements():
    """2**31 logical elements (an overlapping strided view of 12 MB): no int32 overflow
    in the kernels' indexing; the results equal torch's on the same view."""
    B, C = 1024, 2**21
    base = torch.randn(B * 1024 + C, generator=torch.Generator().manual_seed(0))
    log_probs = base.as_strided((B, 1, C), (1024, C, 1))
    assert log_probs.numel() == 2**31
    tokens, lengths = crnn_fast.ctc_greedy_decode(log_probs, blank=C - 1)
    best = log_probs[:, 0].argmax(-1)
    assert torch.equal(tokens[:, 0].long(), torch.where(best == C - 1, -1, best))
    beams = crnn_fast.ctc_beam_search(log_probs, beam_width=2, blank=C - 1)
    assert torch.equal(beams.tokens[:, 0, 0].long(), tokens[:, 0].long())
