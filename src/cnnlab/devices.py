"""Parallel sweeps on one machine (`hydra/launcher=parallel`, Hydra's joblib launcher): each job on one GPU.

joblib keeps `n_jobs` worker processes and gives them jobs as they free up; a worker's first job claims a slot (a
lock file in the sweep folder, held until the worker exits) and the worker keeps that slot's GPU for every job it
runs, because CUDA reads `CUDA_VISIBLE_DEVICES` once per process. With more jobs than GPUs, slots share GPUs evenly.
"""

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

_claimed: dict[str, str] = {}  # per worker process: the device it keeps (and the open lock file keeping its slot)
_locks: list = []


def visible_gpus() -> list[str]:
    """The GPUs a job may be given: those in CUDA_VISIBLE_DEVICES if set, else every GPU nvidia-smi lists (asked
    without starting CUDA in this process, which would fix its device before the job chooses one)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return [str(i) for i, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU ")]


def claim_device(folder: Path, slots: int, gpus: list[str]) -> str:
    """This process's GPU: the first free of `slots` lock files in `folder` (held until the process exits), mapped
    onto the GPUs round-robin."""
    key = str(folder)
    if key not in _claimed:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in range(max(slots, 1)):
            handle = open(folder / f"slot{slot}.lock", "w")  # noqa: SIM115 - held for the life of the process
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _locks.append(handle)
            _claimed[key] = gpus[slot % len(gpus)]
            break
        else:  # more workers than slots: joblib never does this; share the first GPU rather than fail
            _claimed[key] = gpus[0]
    return _claimed[key]


class OneDevicePerJob(Callback):
    """Hydra callback: under the joblib launcher on a machine with GPUs, each job sees one GPU."""

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        launcher = str(config.hydra.launcher.get("_target_", ""))
        if "joblib" not in launcher:
            return
        gpus = visible_gpus()
        if not gpus:
            return
        n_jobs = config.hydra.launcher.get("n_jobs") or len(gpus)
        slots = len(gpus) if n_jobs < 0 else n_jobs
        device = claim_device(Path(config.hydra.sweep.dir) / ".devices", slots, gpus)
        os.environ["CUDA_VISIBLE_DEVICES"] = device
