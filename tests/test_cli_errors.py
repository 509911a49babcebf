"""Bad input through the real command line: a short message naming what is wrong, exit code != 0, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

BAD = [
    # (overrides, exit code, fragments of the message)
    (["arch.layers.1.kernel_size=[0,3]"], 2, ["layer 1 (C)", "'kernel_size'", "[0, 3]"]),
    (["arch.layers.0.type=Q"], 2, ["layer 0", "unknown type 'Q'"]),
    (["+arch.layers.0.kernal_size=3"], 2, ["unknown field 'kernal_size'", "kernel_size"]),
    (["+arch.layers.5.padding=valid"], 2, ["layer 5 (P)", "collapses", "input 4x4", "1x8x8"]),
    (["arch=file", "arch.path=nowhere.json"], 2, ["nowhere.json does not exist"]),
    (["arch=nope"], 1, ["Could not find 'arch/nope'", "seed_deep"]),
    (["optim=adamx"], 1, ["Could not find 'optim/adamx'", "rmsprop"]),
    (["data.batch_sized=3"], 1, ["data.batch_sized"]),
    (["data.batch_size=0"], 2, ["data.batch_size = 0", "positive integer"]),
    (["data.classes=[3,12]"], 2, ["data.classes", "0..9"]),
    (["data.protocol=random"], 2, ["data.protocol", "'official'"]),
    (["ckpt_path=missing.ckpt"], 2, ["ckpt_path=missing.ckpt does not exist", "last.ckpt"]),
    (["optim.lr=-1"], 2, ["optim", "Invalid learning rate: -1"]),
    (["trainer.max_epochs=abc"], 2, ["trainer", "max_epochs"]),
]


@pytest.mark.parametrize("overrides, code, fragments", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_fails_fast_and_clearly(train, overrides, code, fragments):
    start = time.monotonic()
    run = train(*overrides)
    assert run.returncode == code, run.output[-2000:]
    for fragment in fragments:
        assert fragment in run.stderr, f"{fragment!r} not in: {run.stderr[-1500:]}"
    assert "Traceback" not in run.output
    assert not (run.dir / "checkpoints").exists()  # stopped before training
    assert time.monotonic() - start < 60


def test_corrupt_checkpoint_is_a_clear_error(train, tmp_path):
    ckpt = tmp_path / "broken.ckpt"
    ckpt.write_bytes(b"not a checkpoint")
    run = train(f"ckpt_path={ckpt}", script="eval.py")
    assert run.returncode == 2 and "cannot read checkpoint" in run.stderr and "Traceback" not in run.output


def test_full_traceback_on_request(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "src/train.py", "data.batch_size=0", f"hydra.run.dir={tmp_path}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr
