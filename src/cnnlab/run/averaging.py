"""The weight-averaging callbacks on Lightning's `WeightAveraging` (options and targets: `cnnlab/averaging.py`)."""

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import WeightAveraging


class EMA(WeightAveraging):
    """Every `every` steps: average <- lerp(average, model, 1 - d), where the decay d = `decay` x (step / total
    steps) ** `power` (power 0: constant; 3: from 0, no averaging early on, to `decay` at the end). With `jump`,
    the model then jumps to the average (lookahead). Validation, checkpoints and the final model use the average.
    Without `buffers` the batch-norm statistics are not averaged: each update gives the average the model's own."""

    def __init__(self, options):  # cnnlab.averaging's AveragingOptions, checked there
        super().__init__(use_buffers=True)  # Lightning swaps buffers in any case; `buffers` decides what is averaged
        self.every, self.decay, self.power, self.jump = options.every, options.decay, options.power, options.jump
        self.buffers = options.buffers
        self._weight = 1.0  # of the model in the next update: 1 - the decay at that step
        self._total, self._updates = 1, 0
        self._all: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])  # (average, model): every tensor
        self._floats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])  # the floating-point ones averaged
        self._kept: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._total = max(1, int(trainer.estimated_stepping_batches))
        average = [*self._average_model.module.parameters(), *self._average_model.module.buffers()]
        current = [*pl_module.parameters(), *pl_module.buffers()]
        self._all = (average, current)
        averaged = len(average) if self.buffers else len(list(pl_module.parameters()))
        self._floats = ([a for a in average[:averaged] if a.is_floating_point()],
                        [c for a, c in zip(average[:averaged], current) if a.is_floating_point()])
        self._kept = (average[averaged:], current[averaged:])  # buffers not averaged: the model's own, copied
        self._updates = int(self._average_model.n_averaged)  # read once (a resumed run continues its count)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None or (step_idx + 1) % self.every:
            return False
        self._weight = 1 - self.decay * min(1.0, (step_idx + 1) / self._total) ** self.power
        return True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        """WeightAveraging's update without AveragedModel.update_parameters, which reads its update count from the
        device at every update (a sync on a GPU): all floating-point tensors in one foreach lerp (integer counters
        are left alone), the first update a copy, as AveragedModel does; then, with `jump`, the model jumps to it."""
        if trainer.global_step <= self._latest_update_step or not self.should_update(step_idx=trainer.global_step - 1):
            return
        with torch.no_grad():
            if self._updates == 0:
                torch._foreach_copy_(*self._all)
            else:
                torch._foreach_lerp_(*self._floats, self._weight)
                if self._kept[0]:
                    torch._foreach_copy_(*self._kept)
            self._average_model.n_averaged += 1  # on the device, for checkpoints
            if self.jump:
                torch._foreach_copy_(*reversed(self._all))
        self._updates += 1
        self._latest_update_step = trainer.global_step


class Lookahead(EMA):
    """airbench's lookahead: the EMA with its decay growing as 0.95^5 x progress^3, and the model jumping to it."""
