"""Training augmentation and the frame-local architecture."""

import pytest
import torch

from crnn_fast.augment import augment
from crnn_fast.model import CRNN, ModelConfig


def images(n=6, seed=0):
    return torch.rand(n, 40, 150, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("level", ["light", "heavy"])
def test_augment_is_a_seeded_change_within_range(level):
    x = images()
    a = augment(x, torch.Generator().manual_seed(1), level=level)
    b = augment(x, torch.Generator().manual_seed(1), level=level)
    c = augment(x, torch.Generator().manual_seed(2), level=level)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().mean() > 0.01
    assert torch.equal(x, images())  # the input is left alone


@pytest.mark.parametrize("level", ["light", "heavy"])
def test_augment_rows_of_a_batch_match_the_whole_batch(level):
    """A rank holding rows 2..4 of a global batch of 6 augments them as one process
    augmenting all 6 would (the draws are made for the whole batch)."""
    x = images()
    whole = augment(x, torch.Generator().manual_seed(3), level=level)
    part = augment(x[2:4], torch.Generator().manual_seed(3), rows=slice(2, 4), total=6, level=level)
    torch.testing.assert_close(part, whole[2:4])


def test_augment_rejects_an_unknown_level():
    with pytest.raises(ValueError, match="level must be one of"):
        augment(images(), torch.Generator(), level="none")


def test_heavy_bends_lines_that_light_keeps_straight():
    """A vertical bar stays nearly straight under the light level's small rotation and
    bends under the heavy level's shear and elastic field: its column's spread over the
    rows grows several times."""
    x = torch.ones(64, 40, 150)
    x[:, :, 72:78] = 0.0  # a dark vertical bar, thick enough to survive thinning
    spread = {}
    for level in ("light", "heavy"):
        y = augment(x, torch.Generator().manual_seed(4), level=level)
        ink = (y < 0.5).float()
        rows = ink.sum(2) > 0
        centre = (ink * torch.arange(150.0)).sum(2) / ink.sum(2).clamp_min(1)  # the bar's column in each row
        mean = (centre * rows).sum(1, keepdim=True) / rows.sum(1, keepdim=True)
        spread[level] = (((centre - mean) ** 2 * rows).sum() / rows.sum()).sqrt()
    assert spread["heavy"] > 3 * spread["light"], spread


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
