"""Where a run's wall time goes: start-up (Python, imports, config, data) to the first training step, training,
and evaluation; written into results.json so that speed is measured on every run, not only in bench/."""

import time

import pytorch_lightning as pl


def process_age() -> float:
    """Seconds since the program started: since its entry script's first line (`import cnnlab`). Not the process's
    start from /proc: a shell that execs Python (`bash -c "sleep 20 && python ..."`) would lend it its own time. The
    interpreter's own start before that line (a few hundredths of a second) is not counted."""
    import cnnlab

    return time.time() - cnnlab.STARTED


class Timing(pl.Callback):
    """Records `time/startup_s` (process start to the first training step), `time/fit_s` (the whole fit, with
    validation) and `time/test_s`; the runner adds `time/total_s`. Every epoch also logs `time/elapsed_s`."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._fit_start = self._test_start = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "time/startup_s" not in self.times:  # read /proc once, not on every step
            self.times["time/startup_s"] = round(process_age(), 3)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # wall time at the end of each epoch (validation included): the x-axis of time-to-accuracy curves
        pl_module.log("time/elapsed_s", round(process_age(), 3), rank_zero_only=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.times["time/fit_s"] = round(time.perf_counter() - self._fit_start, 3)

    def on_test_start(self, trainer, pl_module) -> None:
        self._test_start = time.perf_counter()

    def on_test_end(self, trainer, pl_module) -> None:
        self.times["time/test_s"] = round(time.perf_counter() - self._test_start, 3)
