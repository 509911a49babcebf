"""Augmentation on a whole batch on its device: random crop after padding, horizontal flip (random, or
alternating per image from one epoch to the next, as airbench does), and cutout."""

import torch
import torch.nn.functional as F

from cnnlab.data.options import AugmentOptions


def random_crop(x: torch.Tensor, padding: int, mode: str = "zeros") -> torch.Tensor:
    """Pad every image by `padding` (zeros, or a mirror of the border with `reflect`) and cut a random H x W
    window from each, in one gather."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="constant" if mode == "zeros" else mode)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # n, h, 1
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # n, 1, w
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    return flip_where(x, torch.rand(x.shape[0], device=x.device) < 0.5)


def alternating_flip(x: torch.Tensor, parity: torch.Tensor, epoch: int) -> torch.Tensor:
    """Each image is mirrored every other epoch, starting from its own random `parity`: over any two epochs
    the network sees both versions of every image, which random flips only promise on average."""
    return flip_where(x, parity.to(x.device).bool() ^ bool(epoch % 2))


def cutout(x: torch.Tensor, size: int, fill: torch.Tensor) -> torch.Tensor:
    """DeVries & Taylor's cutout: a size x size square at a random centre of each image (it may hang over the
    border) set to `fill` (the data set's mean, so the square is zero once normalised)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top, left = cy - size // 2, cx - size // 2
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return torch.where(inside[:, None], fill.to(x.device, x.dtype), x)


def augment_batch(x: torch.Tensor, options: AugmentOptions, parity: torch.Tensor | None = None, epoch: int = 0,
                  fill: torch.Tensor | None = None) -> torch.Tensor:
    """The `data.augment` options on a batch; `parity` (0/1 per image) is needed for `flip: alternate`, `fill`
    (per channel) for cutout."""
    if options.crop_padding:
        x = random_crop(x, options.crop_padding, options.padding_mode)
    if options.flip == "alternate":
        x = alternating_flip(x, parity, epoch)
    elif options.flip:
        x = random_flip(x)
    if options.cutout:
        x = cutout(x, options.cutout, fill)
    return x.contiguous()
