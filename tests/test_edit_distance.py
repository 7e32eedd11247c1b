import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pairs import random_pairs
from rapidfuzz.distance import Levenshtein
from reference import levenshtein_reference, rows_of

import crnn_fast

# (B, hyp width, ref width, vocab): OCR labels, empty batch, empty rows, the 64-token
# word boundary on either side, multi-block patterns, very different lengths.
CASES = [
    (200, 8, 5, 62, True),
    (0, 5, 5, 10, True),
    (7, 0, 4, 5, False),
    (7, 4, 0, 5, False),
    (40, 64, 64, 3, True),
    (40, 65, 63, 4, True),
    (30, 63, 130, 7, False),
    (12, 200, 190, 5, True),
    (6, 300, 20, 30, False),
    (4, 1500, 1100, 50, True),
]


def check_against_rapidfuzz(result, hyp, hyp_lengths, ref, ref_lengths):
    expected = [Levenshtein.distance(h, r) for h, r in zip(rows_of(hyp, hyp_lengths), rows_of(ref, ref_lengths))]
    assert result.dtype == torch.int32 and result.device == hyp.device
    assert result.cpu().tolist() == expected


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_rapidfuzz(device, dtype, case):
    B, hw, rw, vocab, related = case
    hyp, hl, ref, rl = random_pairs(B, hw, rw, vocab, seed=B + hw + rw, related=related, dtype=dtype)
    hyp, ref = hyp.to(device), ref.to(device)
    check_against_rapidfuzz(crnn_fast.edit_distance(hyp, hl, ref, rl), hyp, hl, ref, rl)


def test_long_sequences_4096(device):
    hyp, hl, ref, rl = random_pairs(3, 4096, 4096, 20, seed=9, related=False)
    hl[:] = 4096
    rl[:] = torch.tensor([4096, 4000, 3000])
    hyp, ref = hyp.to(device), ref.to(device)
    check_against_rapidfuzz(crnn_fast.edit_distance(hyp, hl, ref, rl), hyp, hl, ref, rl)


def test_known_values(device):
    kitten = torch.tensor([[ord(c) for c in "kitten"], [ord(c) for c in "flaw\0\0"]], device=device)
    sitting = torch.tensor([[ord(c) for c in "sitting"], [ord(c) for c in "lawn\0\0\0"]], device=device)
    assert crnn_fast.edit_distance(kitten, [6, 4], sitting, [7, 4]).tolist() == [3, 2]
    assert crnn_fast.edit_distance(kitten, [6, 4], kitten, [6, 4]).tolist() == [0, 0]
    assert crnn_fast.edit_distance(kitten, [0, 4], sitting, [7, 0]).tolist() == [7, 4]


def test_any_token_values(device):
    """Token ids are arbitrary integers: huge, negative, and equal to the padding value."""
    hyp = torch.tensor([[2**40, -7, 5, -1]], device=device)
    ref = torch.tensor([[-7, 2**40, 5, -1]], device=device)
    assert crnn_fast.edit_distance(hyp, None, ref, None).tolist() == [2]


def test_mixed_and_small_int_dtypes(device):
    hyp, hl, ref, rl = random_pairs(30, 10, 12, 100, seed=4)
    want = crnn_fast.edit_distance(hyp.to(device), hl, ref.to(device), rl)
    got = crnn_fast.edit_distance(hyp.to(torch.int16).to(device), hl, ref.to(torch.uint8).to(device), rl)
    assert torch.equal(got, want)


def test_non_contiguous(device):
    hyp, hl, ref, rl = random_pairs(20, 70, 70, 6, seed=5)
    hyp_t = hyp.t().contiguous().to(device).t()  # column-major
    ref_s = torch.stack([ref, ref], dim=2).to(device)[:, :, 0]  # stride 2 along the row
    assert not hyp_t.is_contiguous() and not ref_s.is_contiguous()
    check_against_rapidfuzz(crnn_fast.edit_distance(hyp_t, hl, ref_s, rl), hyp_t, hl, ref_s, rl)


@given(
    a=st.lists(st.integers(-3, 5), max_size=150),
    b=st.lists(st.integers(-3, 5), max_size=150),
)
def test_property_matches_dp_cpu(a, b):
    width_a, width_b = max(len(a), 1), max(len(b), 1)
    hyp = torch.full((1, width_a), 99)
    ref = torch.full((1, width_b), 99)
    hyp[0, : len(a)] = torch.tensor(a, dtype=torch.int64)
    ref[0, : len(b)] = torch.tensor(b, dtype=torch.int64)
    assert crnn_fast.edit_distance(hyp, [len(a)], ref, [len(b)]).tolist() == [levenshtein_reference(a, b)]


@pytest.mark.parametrize("widths", [(8, 5), (90, 70)], ids=str)
def test_opcheck(device, widths):
    hyp, hl, ref, rl = random_pairs(6, *widths, 9, seed=6)
    args = (hyp.to(device), hl.to(device), ref.to(device), rl.to(device))
    torch.library.opcheck(torch.ops.crnn_fast.edit_distance.default, args)
