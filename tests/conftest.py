"""Shared fixtures: real `src/train.py` / `src/eval.py` subprocesses on tiny budgets, one output folder each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_train(*overrides: str, **kwargs):
    """The `train` config as `src/train.py` would compose it for these overrides, without running anything."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", list(overrides), **kwargs)


@dataclass
class Run:
    """A finished command: its exit code, its output, and its run directory."""

    returncode: int
    stdout: str
    stderr: str
    dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self) -> dict[str, float]:
        return json.loads((self.dir / "results.json").read_text())


def run_script(script: str, run_dir: Path, *overrides: str, data_dir: Path | None = None, timeout: int = 300) -> Run:
    """`python src/<script> <overrides> hydra.run.dir=<run_dir>` in a subprocess, as a user would type it."""
    env = {**os.environ, "CNNLAB_DATA_DIR": str(data_dir or run_dir.parent / "data"), "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, str(ROOT / "src" / script), *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr, run_dir)


@pytest.fixture
def train(tmp_path):
    """Call as train(*overrides) -> Run; each call gets its own run directory under tmp_path."""
    count = iter(range(1000))

    def _train(*overrides: str, script: str = "train.py", **kwargs) -> Run:
        return run_script(script, tmp_path / f"run{next(count)}", *overrides, **kwargs)

    return _train


TINY = ("trainer.max_epochs=2", "data.batch_size=256")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Run:
    """One real two-epoch training of the seed arch on digits, shared by the tests that read its outputs."""
    run = run_script("train.py", tmp_path_factory.mktemp("trained") / "run", *TINY)
    assert run.returncode == 0, run.output[-3000:]
    return run
