"""Batch-level mixing on the training device (`model.mixup`, `model.cutmix`): torchvision's MixUp and CutMix on the
`share` of training batches each is given, labels becoming mixed one-hot targets. The draws come from torch's seeded
CPU generator (saved in checkpoints): no device read, and a resumed run mixes as the uninterrupted one would."""

from typing import Any

import torch

from cnnlab.model.options import Mixing


class Mixer:
    """Mixes a training batch with mixup, cutmix or neither, by their shares of batches."""

    def __init__(self, num_classes: int, mixup: Mixing | None, cutmix: Mixing | None):
        self.choices: list[tuple[float, Any]] = []
        for options, name in ((mixup, "MixUp"), (cutmix, "CutMix")):
            if options is not None and options.share > 0:
                from torchvision.transforms import v2

                transform = getattr(v2, name)(alpha=options.alpha, num_classes=num_classes)
                self.choices.append((options.share, transform))

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
