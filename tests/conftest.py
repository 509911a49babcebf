"""Shared fixtures: plans checked in-process as the command line checks them, real Lightning runs of them on tiny
budgets, and real `src/*.py` subprocesses where the command line itself is under test; one output folder each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """The option groups' Hydra schemas of every command, as each command registers its own before composing; and
    each pytest-xdist worker, with the runs it starts, computes on its share of the cores: two workers of two torch
    threads each on two cores spin against each other (a small in-process run took 2.7x as long)."""
    from cnnlab.schemas import ENTRY_POINTS, register

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 0))
    if workers:
        import torch

        from cnnlab.machine import cores

        threads = cores(workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the subprocesses' torch
        torch.set_num_threads(threads)

    for entry_point in ENTRY_POINTS:
        register(entry_point)


def compose_train(*overrides: str, return_hydra_config: bool = False):
    """The `train` config as `src/train.py` would compose it for these overrides, without running anything (with
    Hydra's own part of it when asked)."""
    if return_hydra_config:
        from hydra import compose, initialize_config_dir

        from cnnlab.compose import CONFIG_DIR

        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            return compose("train", list(overrides), return_hydra_config=True)
    from cnnlab.compose import compose as compose_config

    return compose_config("train", *overrides)


def compose_config(name: str, *overrides: str):
    from cnnlab.compose import compose

    return compose(name, *overrides)


@dataclass
class Run:
    """A finished run: its exit code, its output, and its run directory."""

    returncode: int
    stdout: str
    stderr: str
    dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self) -> dict[str, float]:
        return json.loads((self.dir / "results.json").read_text())


def run_script(
    script: str,
    run_dir: Path,
    *overrides: str,
    data_dir: Path | None = None,
    timeout: int = 300,
    env: dict | None = None,
) -> Run:
    """`python src/<script> <overrides> hydra.run.dir=<run_dir>` in a subprocess, as a user would type it."""
    env = {
        **os.environ,
        "CNNLAB_DATA_DIR": str(data_dir or run_dir.parent / "data"),
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, str(ROOT / "src" / script), *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, run_dir)


def train_plan(run_dir: Path, *overrides: str, data_dir: Path | None = None):
    """train.py's plan for these overrides, checked in-process."""
    from cnnlab.cli import train_plan as make

    return make(*overrides, f"paths.data_dir={data_dir or run_dir.parent / 'data'}", out=run_dir)


def train_in_process(run_dir: Path, *overrides: str, data_dir: Path | None = None, capsys=None) -> Run:
    """What `src/train.py <overrides>` does, in this process: check, build, fit, test, report."""
    from cnnlab.run.tasks import train

    train(train_plan(run_dir, *overrides, data_dir=data_dir))
    out = capsys.readouterr() if capsys is not None else None
    return Run(0, out.out if out else "", out.err if out else "", run_dir)


@pytest.fixture
def train(tmp_path):
    """train(*overrides) -> Run of a real `src/train.py` subprocess; each call gets its own run directory."""
    count = iter(range(1000))

    def _train(*overrides: str, script: str = "train.py", **kwargs) -> Run:
        return run_script(script, tmp_path / f"run{next(count)}", *overrides, **kwargs)

    return _train


@pytest.fixture
def fit(tmp_path, capsys):
    """fit(*overrides) -> Run of train.py's whole task in this process (no Python start-up: seconds, not tens)."""
    count = iter(range(1000))

    def _fit(*overrides: str, **kwargs) -> Run:
        return train_in_process(tmp_path / f"fit{next(count)}", *overrides, capsys=capsys, **kwargs)

    return _fit


def bare_trainer(**options):
    """A Lightning Trainer without the run's logger, checkpoints, bar or summary: for tests of one piece."""
    import pytorch_lightning as pl

    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **options)


TINY = ("trainer.max_epochs=2", "data.batch_size=256")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Run:
    """One real two-epoch `src/train.py` run of the seed arch on digits, shared by the tests that read its outputs:
    by every pytest-xdist worker too (the first trains it under a lock, the others read what it printed)."""
    import fcntl

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    folder, printed = shared / "trained", shared / "trained" / "printed.json"
    folder.mkdir(exist_ok=True)
    with open(shared / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not printed.is_file():
            run = run_script("train.py", folder / "run", *TINY)
            assert run.returncode == 0, run.output[-3000:]
            printed.write_text(json.dumps([run.stdout, run.stderr]))
    return Run(0, *json.loads(printed.read_text()), folder / "run")


@pytest.fixture(autouse=True)
def _same_arithmetic_after():
    """In-process runs share this process: a test that changes its thread count changes every later run's sums."""
    import torch

    threads = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == threads, "this test left torch's thread count changed"
