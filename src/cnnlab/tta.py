"""Test-time augmentation: several views of each test image vote with their logits (`model.tta`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError

VIEWS = ("flip", "translate")


def check_views(views: Sequence[str] | str | None) -> tuple[str, ...]:
    """`model.tta` as a tuple of known views; a single word is taken as a one-view list."""
    if views is None:
        return ()
    if isinstance(views, str):
        views = [views]
    views = tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or len(set(views)) != len(views):
        raise ConfigError(f"model.tta = {list(views)}; expected a list of distinct views among {', '.join(VIEWS)}, "
                          "e.g. model.tta=[flip] or model.tta=[flip,translate] (or null for none).")
    return views


def vote(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, views: Sequence[str]) -> torch.Tensor:
    """Averaged logits over the views, weighted as airbench does: `flip` averages each image with its mirror
    image; `translate` gives half the weight to the image shifted one pixel up-left and down-right
    (reflect padding), so that [flip, translate] evaluates six views."""

    def mirrored(z: torch.Tensor) -> torch.Tensor:
        return (forward(z) + forward(z.flip(3))) / 2 if "flip" in views else forward(z)

    logits = mirrored(x)
    if "translate" in views:
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:])) / 2
        logits = (logits + shifted) / 2
    return logits
