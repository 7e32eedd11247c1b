"""Training-time augmentation, batched on the images' device."""

import math
from typing import Optional

import torch
import torch.nn.functional as F


def augment(images: torch.Tensor, generator: torch.Generator, rows: Optional[slice] = None,
            total: Optional[int] = None, strength: float = 1.0) -> torch.Tensor:
    """Random warps and degradations of ``images``, (B, H, W) float in [0, 1]: affine
    (rotation, shear, scale, shift) and a smooth elastic field, thicker or thinner
    strokes or blur, a small box painted over, contrast, brightness and noise. Returns
    a new tensor. ``strength`` scales the geometric distortions (1: a few degrees of
    rotation, a few percent of scale and shift).

    The random draws are made for a batch of ``total`` images (default B) of which
    ``images`` are the ``rows``: the ranks of a distributed run, each holding a slice of
    the global batch, then augment exactly as one process augmenting the whole batch."""
    B, H, W = images.shape
    total = B if total is None else total
    rows = slice(0, B) if rows is None else rows
    device = images.device
    rand = lambda *shape: torch.rand(total, *shape, generator=generator, device=device)[rows]  # noqa: E731
    s = strength
    angle = (rand() - 0.5) * math.radians(6) * s
    shear = (rand() - 0.5) * 0.3 * s
    scale = 1 + (rand(2) - 0.5) * 0.12 * s  # x, y
    shift = (rand(2) - 0.5) * 0.08 * s
    elastic = (rand(2, 3, 8) - 0.5) * 0.06 * s  # a coarse displacement field, smoothly upsampled
    stroke, stroke_amount = rand(), 0.7 * rand()
    box_on, box = rand(), rand(4)
    contrast = 0.75 + 0.5 * rand(1, 1)
    brightness = (rand(1, 1) - 0.5) * 0.2
    noise = torch.randn((total, H, W), generator=generator, device=device)[rows]

    theta = torch.zeros(B, 2, 3, device=device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[:, 0, 0], theta[:, 0, 1] = cos / scale[:, 0], (shear - sin) / scale[:, 0]
    theta[:, 1, 0], theta[:, 1, 1] = sin / scale[:, 1], cos / scale[:, 1]
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (B, 1, H, W), align_corners=False)
    grid = grid + F.interpolate(elastic, size=(H, W), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    x = F.grid_sample(images.unsqueeze(1), grid, padding_mode="border", align_corners=False)

    # Strokes: a quarter thickened (a min filter grows dark ink), a quarter thinned, a
    # quarter blurred, a quarter left alone.
    stroke, amount = stroke.view(B, 1, 1, 1), stroke_amount.view(B, 1, 1, 1)
    thick, thin = -F.max_pool2d(-x, 3, 1, 1), F.max_pool2d(x, 3, 1, 1)
    blur = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    x = torch.where(stroke < 0.25, x + amount * (thick - x),
                    torch.where(stroke < 0.5, x + amount * (thin - x), torch.where(stroke < 0.75, blur, x)))
    x = x.squeeze(1)

    # Half the images get one small box (4-10% of the width, 10-30% of the height) painted
    # with their mean: too small to hide a whole character.
    cx, cy, bw, bh = box.unbind(1)
    xs = torch.linspace(0, 1, W, device=device).view(1, 1, W)
    ys = torch.linspace(0, 1, H, device=device).view(1, H, 1)
    inside = (((xs - cx.view(B, 1, 1)).abs() < (0.02 + 0.03 * bw).view(B, 1, 1))
              & ((ys - cy.view(B, 1, 1)).abs() < (0.05 + 0.1 * bh).view(B, 1, 1))
              & (box_on < 0.5).view(B, 1, 1))
    x = torch.where(inside, x.mean((1, 2), keepdim=True), x)

    x = (x - 0.5) * contrast + 0.5 + brightness
    x = x + 0.03 * noise
    return x.clamp_(0, 1)
