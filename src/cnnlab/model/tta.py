"""Test-time augmentation: several views of each test image vote with their logits (`model.tta`)."""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def vote(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: Sequence[str],
         shift: int = 2) -> torch.Tensor:
    """Averaged logits over the views. `flip` averages each image with its mirror image; `translate` gives half the
    weight to the image shifted one pixel up-left and down-right (reflect padding), as airbench weights them, so that
    [flip, translate] evaluates six views; `crops` averages the image and its four shifts by `shift` pixels towards
    the corners (reflect padding) with equal weights: [flip, crops] is the ten-crop test of FER2013's best networks
    at the network's own input size."""

    def mirrored(z: torch.Tensor) -> torch.Tensor:
        return (forward(z) + forward(z.flip(3))) / 2 if "flip" in views else forward(z)

    logits = mirrored(x)
    if "translate" in views:
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:])) / 2
        logits = (logits + shifted) / 2
    if "crops" in views:
        h, w = x.shape[2:]
        padded = F.pad(x, (shift,) * 4, mode="reflect")
        corners = [padded[..., dy:dy + h, dx:dx + w] for dy in (0, 2 * shift) for dx in (0, 2 * shift)]
        logits = (logits + sum(mirrored(c) for c in corners)) / 5
    return logits
