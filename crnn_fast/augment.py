"""Training-time augmentation, batched on the images' device."""

import math
from typing import Optional

import torch
import torch.nn.functional as F

LEVELS = ("none", "light", "heavy")
"""``augment``'s levels (``none``: the training loop does not call it)."""

HEAVY = 1.5  # "heavy": the light level's rotation, scale and shift, this much larger


def augment(images: torch.Tensor, generator: torch.Generator, rows: Optional[slice] = None,
            total: Optional[int] = None, level: str = "light") -> torch.Tensor:
    """Random warps and degradations of ``images``, (B, H, W) float in [0, 1]; returns
    a new tensor.

    ``light`` (the GPU preset's and a --train-dir folder's; the CPU preset, which
    renders fresh images, trains on them clean): a small affine warp (up
    to 3 degrees of rotation, 6% of scale, 4% of shift), contrast, brightness and noise.
    ``heavy`` (for a few hundred images): the warp 1.5x as large, with shear and
    separate x and y scales, plus a smooth elastic field, thicker or thinner strokes or
    blur, and a small box painted over half the images. These distortions slow training
    on large synthetic sets (the CPU preset with them at the light scale: 61.4%
    validation exact match after 5 epochs against 78.4%) but lift fine-tuning on 100
    images (README).

    The random draws are made for a batch of ``total`` images (default B) of which
    ``images`` are the ``rows``: the ranks of a distributed run, each holding a slice of
    the global batch, then augment exactly as one process augmenting the whole batch."""
    if level not in LEVELS[1:]:
        raise ValueError(f"level must be one of {LEVELS[1:]}, got {level!r}")
    B, H, W = images.shape
    total = B if total is None else total
    rows = slice(0, B) if rows is None else rows
    device = images.device
    rand = lambda *shape: torch.rand(total, *shape, generator=generator, device=device)[rows]  # noqa: E731
    heavy = level == "heavy"
    k = HEAVY if heavy else 1
    angle = (rand() - 0.5) * math.radians(6) * k
    if heavy:  # shear, and separate x and y scales
        shear = (rand() - 0.5) * 0.3 * k
        scale = 1 + (rand(2) - 0.5) * 0.12 * k
    else:  # the draws, in order, of the augmentation the presets were measured with
        shear = torch.zeros(B, device=device)
        scale = (1 + (rand() - 0.5) * 0.12).unsqueeze(1).expand(B, 2)
    shift = (rand(2) - 0.5) * 0.08 * k
    if heavy:
        elastic = (rand(2, 3, 8) - 0.5) * 0.06 * k  # a coarse displacement field, smoothly upsampled
        stroke, amount, box_on, box = rand(), 0.7 * rand(), rand(), rand(4)
    contrast = 0.75 + 0.5 * rand(1, 1)
    brightness = (rand(1, 1) - 0.5) * 0.2
    noise = torch.randn((total, H, W), generator=generator, device=device)[rows]

    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(B, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos / scale[:, 0], (shear - sin) / scale[:, 0]
    theta[:, 1, 0], theta[:, 1, 1] = sin / scale[:, 1], cos / scale[:, 1]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (B, 1, H, W), align_corners=False)
    if heavy:
        grid = grid + F.interpolate(elastic, size=(H, W), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    x = F.grid_sample(images.unsqueeze(1), grid, padding_mode="border", align_corners=False)
    if heavy:
        x = _strokes_and_box(x, stroke, amount, box_on, box)
    x = (x.squeeze(1) - 0.5) * contrast + 0.5 + brightness
    x = x + 0.03 * noise
    return x.clamp_(0, 1)


def _strokes_and_box(x: torch.Tensor, stroke, amount, box_on, box) -> torch.Tensor:
    """``x`` (B, 1, H, W): a quarter of the images with thicker strokes (a min filter
    grows dark ink), a quarter thinner, a quarter blurred, a quarter left alone; then
    half of them with one small box (4-10% of the width, 10-30% of the height, too small
    to hide a whole character) painted with the image's mean."""
    B, _, H, W = x.shape
    stroke, amount = stroke.view(B, 1, 1, 1), amount.view(B, 1, 1, 1)
    thick, thin = -F.max_pool2d(-x, 3, 1, 1), F.max_pool2d(x, 3, 1, 1)
    blur = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    x = torch.where(stroke < 0.25, x + amount * (thick - x),
                    torch.where(stroke < 0.5, x + amount * (thin - x), torch.where(stroke < 0.75, blur, x)))
    cx, cy, bw, bh = (v.view(B, 1, 1, 1) for v in box.unbind(1))
    xs = torch.linspace(0, 1, W, device=x.device).view(1, 1, 1, W)
    ys = torch.linspace(0, 1, H, device=x.device).view(1, 1, H, 1)
    inside = ((xs - cx).abs() < 0.02 + 0.03 * bw) & ((ys - cy).abs() < 0.05 + 0.1 * bh)
    inside &= (box_on < 0.5).view(B, 1, 1, 1)
    return torch.where(inside, x.mean((2, 3), keepdim=True), x)
