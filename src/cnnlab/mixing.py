"""Batch-level mixing regularisers, on the training device: mixup and cutmix (`model.mixup`, `model.cutmix`).

Each is torchvision's batch transform (`transforms.v2.MixUp`, `CutMix`): one mixing weight per batch, drawn from
Beta(alpha, alpha), each image paired with its neighbour in the (shuffled) batch; labels become the mixed one-hot
targets that cross-entropy takes as probabilities (label smoothing still applies). `share` is the fraction of
training batches each one mixes; the rest train as they are. The draws come from torch's CPU generator (seeded,
saved in checkpoints), so they cost no device read and a resumed run mixes as the uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.errors import ConfigError

MIX_KEYS = ("alpha", "share")


def check_mix(options: Any, key: str) -> dict[str, float] | None:
    """`model.mixup` / `model.cutmix`: null, or {alpha: > 0, share: in [0, 1]}."""
    if options is None:
        return None
    example = f"e.g. {key}={{alpha: 0.2, share: 0.5}}, or null for none"
    if not isinstance(options, dict) or set(options) - set(MIX_KEYS):
        raise ConfigError(f"{key} = {options!r}; expected a mapping with keys {' and '.join(MIX_KEYS)}, {example}.")
    alpha, share = options.get("alpha", 1.0), options.get("share", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ConfigError(f"{key}.alpha = {alpha!r}; expected a number > 0 (the Beta distribution's parameter; "
                          f"0.2 mixes gently, 1 uniformly), {example}.")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{key}.share = {share!r}; expected the fraction of training batches to mix, "
                          f"0 <= share <= 1, {example}.")
    return {"alpha": float(alpha), "share": float(share)}


class Mixer:
    """Mixes a training batch with mixup, cutmix or neither, by their shares of batches."""

    def __init__(self, num_classes: int, mixup: dict[str, float] | None, cutmix: dict[str, float] | None):
        from torchvision.transforms import v2

        self.choices: list[tuple[float, Any]] = []
        for options, transform in ((mixup, v2.MixUp), (cutmix, v2.CutMix)):
            if options and options["share"] > 0:
                self.choices.append((options["share"], transform(alpha=options["alpha"], num_classes=num_classes)))
        total = sum(share for share, _ in self.choices)
        if total > 1 + 1e-9:
            raise ConfigError(f"model.mixup.share + model.cutmix.share = {total:g}; together they can mix at most "
                              "every batch (a sum <= 1).")

    def __bool__(self) -> bool:
        return bool(self.choices)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets): class indices when the batch is left as it is, mixed probabilities otherwise."""
        draw = float(torch.rand(()))
        for share, transform in self.choices:
            if draw < share:
                return transform(x, y)
            draw -= share
        return x, y
