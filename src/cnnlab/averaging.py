"""Weight averaging that trains, not only evaluates: airbench's lookahead (`callbacks=lookahead`).

Built on Lightning's `WeightAveraging` (an `AveragedModel` of weights and batch-norm statistics, saved in and
restored from checkpoints, swapped in for validation, copied into the model when training ends). Lookahead adds
one thing: every `every` steps the model itself jumps to the average, which airbench found worth ~1.5 epochs.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging

from cnnlab.errors import ConfigError


class Lookahead(WeightAveraging):
    """Every `every` steps: average <- lerp(average, model, 1 - d), then model <- average, where the decay
    d = `decay` x (step / total steps) ** `power` grows from 0 (no averaging early on) to `decay` at the end."""

    def __init__(self, every: int = 5, decay: float = 0.95**5, power: float = 3.0):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"callbacks.lookahead.every = {every!r}; expected a positive number of steps.")
        if not isinstance(decay, int | float) or not 0 <= decay < 1:
            raise ConfigError(f"callbacks.lookahead.decay = {decay!r}; expected a number 0 <= decay < 1.")
        if not isinstance(power, int | float) or power < 0:
            raise ConfigError(f"callbacks.lookahead.power = {power!r}; expected a number >= 0.")
        super().__init__(use_buffers=True, multi_avg_fn=self._lerp)
        self.every, self.decay, self.power = every, decay, power
        self._weight = 1.0  # of the model in the next update: 1 - the decay at that step
        self._total = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._total = max(1, int(trainer.estimated_stepping_batches))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None or (step_idx + 1) % self.every:
            return False
        self._weight = 1 - self.decay * min(1.0, (step_idx + 1) / self._total) ** self.power
        return True

    def _lerp(self, averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: Any) -> None:
        if averaged and averaged[0].is_floating_point():  # grouped by dtype: counters (int) are left alone
            torch._foreach_lerp_(averaged, current, self._weight)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        before = self._latest_update_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._latest_update_step != before:
            self._copy_average_to_current(pl_module)
