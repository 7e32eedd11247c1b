"""Training augmentation and the frame-local architecture."""

import pytest
import torch

from crnn_fast.augment import augment
from crnn_fast.model import CRNN, ModelConfig


def images(n=6, seed=0):
    return torch.rand(n, 40, 150, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("strength", [0.5, 1.0, 2.0])
def test_augment_is_a_seeded_change_within_range(strength):
    x = images()
    a = augment(x, torch.Generator().manual_seed(1), strength=strength)
    b = augment(x, torch.Generator().manual_seed(1), strength=strength)
    c = augment(x, torch.Generator().manual_seed(2), strength=strength)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().mean() > 0.01
    assert torch.equal(x, images())  # the input is left alone


def test_augment_rows_of_a_batch_match_the_whole_batch():
    """A rank holding rows 2..4 of a global batch of 6 augments them as one process
    augmenting all 6 would (the draws are made for the whole batch)."""
    x = images()
    whole = augment(x, torch.Generator().manual_seed(3))
    part = augment(x[2:4], torch.Generator().manual_seed(3), rows=slice(2, 4), total=6)
    torch.testing.assert_close(part, whole[2:4])


def test_strength_scales_the_geometry():
    """Straight lines stay straight under mild warps and bend under strong ones: a
    vertical bar's column spread grows with the strength."""
    x = torch.ones(64, 40, 150)
    x[:, :, 72:78] = 0.0  # a dark vertical bar, thick enough to survive thinning
    spread = {}
    for strength in (0.25, 2.0):
        y = augment(x, torch.Generator().manual_seed(4), strength=strength)
        ink = (y < 0.5).float()
        rows = ink.sum(2) > 0
        centre = (ink * torch.arange(150.0)).sum(2) / ink.sum(2).clamp_min(1)  # the bar's column in each row
        mean = (centre * rows).sum(1, keepdim=True) / rows.sum(1, keepdim=True)
        spread[strength] = (((centre - mean) ** 2 * rows).sum() / rows.sum()).sqrt()
    assert spread[2.0] > 3 * spread[0.25]


def test_local_arch_frames_see_only_their_neighbourhood():
    """An output frame of arch "local" depends on a 42-px window of the image: changing
    columns 100.. leaves the first frames exactly as they were; the BiGRU's frames all
    see the whole image."""
    torch.manual_seed(0)
    x = images(2)
    y = x.clone()
    y[:, :, 100:] = torch.rand(2, 40, 50)
    for arch, unchanged in (("local", True), ("default", False)):
        model = CRNN(ModelConfig(alphabet="abc", arch=arch)).eval()
        with torch.no_grad():
            a, b = model(x), model(y)
        assert a.shape == (2, 37, 4)
        assert torch.equal(a[:, :18], b[:, :18]) is unchanged
        assert not torch.equal(a[:, -5:], b[:, -5:])
