"""Fault injection for the robustness tests, loaded into a real `src/train.py` run through the config:
`+callbacks.kill._target_=tests.faults.KillAtStep +callbacks.kill.step=7` (with the repository on PYTHONPATH);
`tests.faults.SignalAtStep` sends a signal instead (Ctrl-C's SIGINT, SLURM's SIGTERM)."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    """SIGKILL the process after training step `step`: no handler runs, as when a machine is taken away."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(pl.Callback):
    """Send this process `signum` (SIGINT as Ctrl-C does, SIGTERM as SLURM does) after training step `step`."""

    def __init__(self, step: int, signum: int = int(signal.SIGINT)):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
