"""Random flips, shifts and small rotations of a batch of images, with torch ops and a seeded generator."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from .base import AUGMENT_PARAMS, augment_on, validate_section

if TYPE_CHECKING:  # pragma: no cover
    import torch


def augment_batch(x: "torch.Tensor", augment: dict[str, Any] | None,
                  generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """A randomly changed copy of a batch of images (N, C, H, W), each image drawn on its own.

    augment: {"flip": bool, "shift": int, "rotate": float} (the data settings' augment section; missing keys
    are off). flip mirrors each image left to right with probability ½; rotate turns it by an angle drawn from
    [−rotate, rotate] degrees (bilinear, zeros outside); shift moves it by whole pixels drawn from [−shift,
    shift] in x and y (zeros fill in). Every draw comes from `generator` (on its own device), so the same
    generator state gives the same batch. With everything off, x itself comes back. For reconstruction data,
    use the augmented batch as the target too.
    """
    a = validate_section("data augmentation", AUGMENT_PARAMS, augment)
    if not augment_on(a):
        return x
    import torch  # torch loads only when a batch is augmented
    import torch.nn.functional as F
    if x.dim() != 4 or not x.is_floating_point():
        raise DataError(f"augmentation works on batches of images (N, C, H, W) of floats, but this batch is "
                        f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}: turn flip, shift and rotate off")
    n, c, h, w = x.shape
    dev = generator.device if generator is not None else torch.device("cpu")

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=dev).to(x.device)

    out = x
    if a["flip"]:
        mirror = rand(n) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    if a["rotate"] > 0:
        angle = (rand(n) * 2 - 1) * math.radians(a["rotate"])
        cos, sin = angle.cos().to(out.dtype), angle.sin().to(out.dtype)
        theta = torch.zeros(n, 2, 3, dtype=out.dtype, device=out.device)
        # affine_grid works in coordinates scaled to [-1, 1] per axis; the ratios keep non-square images unwarped
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * (h / w)
        theta[:, 1, 0], theta[:, 1, 1] = sin * (w / h), cos
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if a["shift"] > 0:
        s = a["shift"]
        d = torch.randint(-s, s + 1, (2, n), generator=generator, device=dev).to(x.device)
        rows = torch.arange(h, device=x.device)[None, :] - d[0][:, None]   # the source row of each output row
        cols = torch.arange(w, device=x.device)[None, :] - d[1][:, None]
        inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
        picked = out[torch.arange(n, device=x.device)[:, None, None], :,
                     rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (N, H, W, C)
        out = picked.permute(0, 3, 1, 2) * inside[:, None].to(out.dtype)
    return out.contiguous()
