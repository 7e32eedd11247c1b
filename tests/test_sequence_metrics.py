import math

import pytest
import torch
from pairs import random_pairs
from rapidfuzz.distance import Levenshtein
from reference import rows_of

import crnn_fast


def metrics_reference(hyp_rows, ref_rows, fold=None):
    """The definitions, one pair at a time in Python."""
    dists = [Levenshtein.distance(h, r) for h, r in zip(hyp_rows, ref_rows)]
    ref_tokens = sum(len(r) for r in ref_rows)
    matches = sum(sum(x == y for x, y in zip(h, r)) for h, r in zip(hyp_rows, ref_rows))
    n = len(ref_rows)
    out = {
        "exact": sum(h == r for h, r in zip(hyp_rows, ref_rows)) / n,
        "char_acc": matches / ref_tokens,
        "cer": sum(dists) / ref_tokens,
        "mean_edit": sum(dists) / n,
        "count": n,
    }
    if fold is not None:
        f = lambda t: fold[t] if 0 <= t < len(fold) else t  # noqa: E731
        out["exact_folded"] = sum([f(t) for t in h] == [f(t) for t in r] for h, r in zip(hyp_rows, ref_rows)) / n
    return out, dists


@pytest.mark.parametrize("widths", [(7, 5), (80, 70), (5, 300)], ids=str)
def test_matches_reference(device, widths):
    hyp, hl, ref, rl = random_pairs(300, *widths, vocab=6, seed=sum(widths))
    fold = [0, 1, 1, 3, 3, 5]  # pairs of tokens that differ only by "case"
    got = crnn_fast.sequence_metrics(hyp.to(device), hl, ref.to(device), rl, fold=fold, return_distances=True)
    want, dists = metrics_reference(rows_of(hyp, hl), rows_of(ref, rl), fold)
    assert got["distances"].cpu().tolist() == dists
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert want["exact"] <= want["exact_folded"] < 1


def test_reference_definitions_on_a_known_batch(device):
    hyp = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [6, 7, 8, 9, 9]], device=device)
    ref = torch.tensor([[1, 2, 3, 4, 5], [2, 3, 4, 5, 0], [16, 7, 8, 9, 9]], device=device)
    fold = torch.arange(20)
    fold[16] = 6  # token 16 is the upper case of token 6
    got = crnn_fast.sequence_metrics(hyp, None, ref, None, fold=fold)
    assert got["exact"] == pytest.approx(1 / 3)
    assert got["exact_folded"] == pytest.approx(2 / 3)
    assert got["char_acc"] == pytest.approx((5 + 0 + 4) / 15)  # a shift costs every position
    assert got["cer"] == pytest.approx((0 + 2 + 1) / 15)
    assert got["mean_edit"] == pytest.approx(1.0)


def test_empty_batch_gives_nan_ratios(device):
    empty = torch.zeros(0, 5, dtype=torch.int64, device=device)
    got = crnn_fast.sequence_metrics(empty, None, empty, None)
    assert got["count"] == 0 and all(math.isnan(got[k]) for k in ("exact", "char_acc", "cer", "mean_edit"))


def test_distances_equal_edit_distance(device):
    hyp, hl, ref, rl = random_pairs(100, 40, 90, vocab=4, seed=1, related=False)
    hyp, ref = hyp.to(device), ref.to(device)
    got = crnn_fast.sequence_metrics(hyp, hl, ref, rl, return_distances=True)["distances"]
    assert torch.equal(got, crnn_fast.edit_distance(hyp, hl, ref, rl))


@pytest.mark.parametrize("with_fold", [False, True])
def test_opcheck(device, with_fold):
    hyp, hl, ref, rl = random_pairs(6, 9, 5, vocab=9, seed=6)
    fold = torch.arange(9, device=device) // 2 if with_fold else None
    args = (hyp.to(device), hl.to(device), ref.to(device), rl.to(device), fold)
    torch.library.opcheck(torch.ops.crnn_fast.sequence_metrics.default, args)


def test_streaming_equals_one_batch(device):
    hyp, hl, ref, rl = random_pairs(250, 9, 7, vocab=5, seed=3)
    hyp, ref = hyp.to(device), ref.to(device)
    fold = [0, 0, 2, 2, 4]
    whole = crnn_fast.sequence_metrics(hyp, hl, ref, rl, fold=fold)
    stream = crnn_fast.SequenceMetrics(fold)
    for lo in range(0, 250, 64):
        stream.update(hyp[lo : lo + 64], hl[lo : lo + 64], ref[lo : lo + 64], rl[lo : lo + 64])
    assert stream.compute() == whole
