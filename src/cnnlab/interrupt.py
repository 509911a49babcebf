"""Ctrl-C and SIGTERM (what SLURM sends before it kills a job): the run stops at the end of the training step it is
in, writes checkpoints/last.ckpt there (weights, optimizer, schedule, RNG, the loader's position and the epoch's
running metrics), says how to continue, and exits with 130 (SIGINT) or 143 (SIGTERM). Continuing gives the same
metrics on the CPU as a run that was never stopped. A second Ctrl-C stops at once, without a checkpoint.
"""

import logging
import shlex
import signal
from pathlib import Path

import pytorch_lightning as pl

from cnnlab.checks.errors import CnnlabError

log = logging.getLogger("cnnlab")
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupted(CnnlabError):
    """The run was stopped by a signal after writing a checkpoint; `exit_code` is the shell's for that signal."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class StopOnSignal(pl.Callback):
    """Turns SIGINT and SIGTERM during fit into a checkpoint at the next step's end and an `Interrupted` error. The
    signal only sets a flag (a handler may run in the middle of a step); the step finishes first, so that the
    checkpoint is a state training can continue from exactly. Under DDP the ranks agree at the logging interval."""

    def __init__(self, checkpoint: Path, command: list[str]):
        self.checkpoint, self.command = Path(checkpoint), command
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.received is not None:  # the second Ctrl-C: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt
        self.received = signum
        log.warning("%s: stopping at the end of this training step (press Ctrl-C again to stop at once, without a "
                    "checkpoint)", NAMES.get(signum, signum))

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before Lightning's own SIGTERM handler, which keeps the handlers it finds and calls them too
        if stage != "fit" or not self._main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    @staticmethod
    def _main_thread() -> bool:
        import threading

        return threading.current_thread() is threading.main_thread()

    def _agreed(self, trainer: pl.Trainer) -> bool:
        if trainer.world_size == 1:
            return self.received is not None
        if trainer.global_step % max(1, trainer.log_every_n_steps):  # a collective: at logging intervals only
            return False
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self._agreed(trainer):
            return
        signum = self.received if self.received is not None else signal.SIGTERM
        trainer.save_checkpoint(self.checkpoint)
        step, epoch = trainer.global_step, trainer.current_epoch + 1
        how = shlex.join([*self.command, f"ckpt_path={self.checkpoint}"])
        raise Interrupted(f"stopped by {NAMES.get(signum, signum)} in epoch {epoch}, after step {step}; "
                          f"{self.checkpoint} holds the run as it was. Continue it with:\n  {how}",
                          EXIT_CODES.get(signum, 1))


def continue_command(script: str, overrides: tuple[str, ...]) -> list[str]:
    """The command that continues a run: the same script and overrides, without an earlier ckpt_path."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith("ckpt_path=")]
    return ["python", f"src/{script}", *kept]
