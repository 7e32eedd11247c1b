import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from reference import ctc_greedy_decode_reference, pad_rows

import crnn_fast

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

# (B, T, C): empty batch, empty time, one frame, two classes, the CAPTCHA shape,
# a speech-like vocabulary, and more classes than a warp has lanes.
SHAPES = [(0, 5, 4), (3, 0, 4), (4, 1, 3), (5, 9, 2), (16, 18, 63), (3, 40, 1100), (2, 70, 33)]


def make_log_probs(shape, dtype, device, seed, peaky=True):
    """Log-probs whose per-frame argmax repeats often (so collapsing matters) and
    that contain exact ties (integer-valued scores), as real CTC outputs do."""
    g = torch.Generator().manual_seed(seed)
    B, T, C = shape
    scores = torch.randint(0, 4, (B, T, C), generator=g).double()
    if peaky and C > 1 and T > 0:
        # stretch a few labels over runs of frames, like a trained model's spikes
        runs = torch.randint(0, C, (B, (T + 2) // 3), generator=g).repeat_interleave(3, dim=1)[:, :T]
        scores.scatter_add_(2, runs.unsqueeze(-1), torch.full((B, T, 1), 5.0, dtype=torch.double))
    return scores.log_softmax(-1).to(dtype=dtype, device=device)


def random_lengths(B, T, seed):
    return torch.randint(0, T + 1, (B,), generator=torch.Generator().manual_seed(seed))


def assert_matches_reference(result, log_probs, lengths, blank):
    rows = ctc_greedy_decode_reference(log_probs, lengths, blank)
    tokens, out_lengths = pad_rows(rows, log_probs.shape[1])
    assert result.tokens.dtype == torch.int32 and result.lengths.dtype == torch.int32
    assert result.tokens.device == log_probs.device and result.lengths.device == log_probs.device
    torch.testing.assert_close(result.lengths.cpu(), out_lengths, rtol=0, atol=0)
    torch.testing.assert_close(result.tokens.cpu(), tokens, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(device, dtype, shape):
    log_probs = make_log_probs(shape, dtype, device, seed=sum(shape))
    lengths = random_lengths(shape[0], shape[1], seed=1)
    result = crnn_fast.ctc_greedy_decode(log_probs, lengths, blank=0)
    assert_matches_reference(result, log_probs, lengths, 0)


@pytest.mark.parametrize("C", [2, 5, 63])
def test_every_blank_position(device, C):
    log_probs = make_log_probs((8, 20, C), torch.float32, device, seed=C)
    for blank in range(C):
        result = crnn_fast.ctc_greedy_decode(log_probs, blank=blank)
        assert_matches_reference(result, log_probs, torch.full((8,), 20), blank)


def test_default_lengths_use_every_frame(device):
    log_probs = make_log_probs((6, 12, 7), torch.float32, device, seed=3)
    full = crnn_fast.ctc_greedy_decode(log_probs)
    explicit = crnn_fast.ctc_greedy_decode(log_probs, [12] * 6)
    assert torch.equal(full.tokens, explicit.tokens) and torch.equal(full.lengths, explicit.lengths)


def test_known_example(device):
    # path a a _ a b b _ _ c  ->  a a b c  (blank = 0, a=1, b=2, c=3)
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    log_probs = torch.nn.functional.one_hot(torch.tensor([path]), 4).float().log_softmax(-1).to(device)
    tokens, lengths = crnn_fast.ctc_greedy_decode(log_probs)
    assert lengths.tolist() == [4]
    assert tokens.tolist() == [[1, 1, 2, 3, -1, -1, -1, -1, -1]]


@pytest.mark.parametrize(
    "layout",
    ["time_major_view", "strided_classes", "expanded_batch", "expanded_classes"],
)
def test_non_contiguous_inputs(device, layout):
    base = make_log_probs((9, 15, 40), torch.float32, device, seed=11)
    if layout == "time_major_view":  # a (T, B, C) buffer seen batch-first, as nn.CTCLoss users hold it
        log_probs = base.transpose(0, 1).contiguous().transpose(0, 1)
    elif layout == "strided_classes":
        log_probs = base[:, :, ::2]
    elif layout == "expanded_batch":  # stride 0 over the batch
        log_probs = base[:1].expand(5, -1, -1)
    else:  # stride 0 over the classes: all ties, argmax is class 0 everywhere
        log_probs = base[:, :, :1].expand(-1, -1, 6)
    assert not log_probs.is_contiguous()
    lengths = random_lengths(log_probs.shape[0], 15, seed=2)
    assert_matches_reference(crnn_fast.ctc_greedy_decode(log_probs, lengths, blank=1), log_probs, lengths, 1)


def test_nan_and_inf_follow_argmax_rules(device):
    log_probs = make_log_probs((4, 10, 6), torch.float32, device, seed=5)
    log_probs[0, 2, 4] = float("nan")
    log_probs[1, :, :] = float("-inf")  # every class impossible: argmax is class 0
    log_probs[2, 3, :] = float("nan")
    log_probs[3, 5, 2] = float("inf")
    result = crnn_fast.ctc_greedy_decode(log_probs, blank=5)
    assert_matches_reference(result, log_probs, torch.full((4,), 10), 5)


@pytest.mark.parametrize("lengths_kind", ["int32_cpu", "int64_device", "list", "tuple"])
def test_lengths_types_and_devices(device, lengths_kind):
    log_probs = make_log_probs((4, 8, 5), torch.float32, device, seed=7)
    values = [8, 0, 3, 5]
    lengths = {
        "int32_cpu": torch.tensor(values, dtype=torch.int32),
        "int64_device": torch.tensor(values, device=device),
        "list": values,
        "tuple": tuple(values),
    }[lengths_kind]
    assert_matches_reference(crnn_fast.ctc_greedy_decode(log_probs, lengths), log_probs, values, 0)


@given(
    B=st.integers(0, 6),
    T=st.integers(0, 30),
    C=st.integers(1, 70),
    data=st.data(),
)
def test_property_matches_reference_cpu(B, T, C, data):
    seed = data.draw(st.integers(0, 2**31 - 1))
    blank = data.draw(st.integers(0, C - 1))
    lengths = data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    log_probs = make_log_probs((B, T, C), torch.float32, "cpu", seed)
    assert_matches_reference(crnn_fast.ctc_greedy_decode(log_probs, lengths, blank), log_probs, lengths, blank)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_opcheck(device, dtype):
    log_probs = make_log_probs((5, 12, 9), dtype, device, seed=13)
    lengths = torch.tensor([12, 0, 5, 7, 1], device=device)
    torch.library.opcheck(torch.ops.crnn_fast.ctc_greedy_decode.default, (log_probs, lengths, 2))
    empty = make_log_probs((0, 4, 3), dtype, device, seed=0)
    torch.library.opcheck(
        torch.ops.crnn_fast.ctc_greedy_decode.default, (empty, torch.zeros(0, dtype=torch.int64, device=device), 0)
    )


def test_torch_compile_fullgraph(device):
    def decode(logits, lengths):
        return crnn_fast.ctc_greedy_decode(logits.log_softmax(-1), lengths, blank=0)

    compiled = torch.compile(decode, fullgraph=True)
    logits = make_log_probs((6, 14, 11), torch.float32, device, seed=17)
    lengths = torch.tensor([14, 3, 0, 9, 14, 1], device=device)
    got, want = compiled(logits, lengths), decode(logits, lengths)
    assert torch.equal(got.tokens, want.tokens) and torch.equal(got.lengths, want.lengths)
