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
    (["arch.layers.9.activation=relu"], 2, ["layer 9 (T)", "'activation'", "'softmax'"]),
    (["arch.layers.1.drop_out=100"], 2, ["layer 1 (C)", "'drop_out'", "100", "percentage"]),
    (["arch.layers.0.activation=relu6"], 2, ["layer 0 (C)", "'relu6'", "'leaky_relu'"]),
    (["arch.layers.3.type=T"], 2, ["layer 3 (T)", "unknown field 'num_output'"]),
    (["arch.layers=[]"], 2, ["non-empty list of layers"]),
    (["+arch.layers.0._target_=os.system"], 2, ["'_target_' is not allowed", "never code"]),
    (["data=svhn"], 1, ["Could not find 'data/svhn'", "fer2013_binary"]),
    (["trainer=tpu"], 1, ["Could not find 'trainer/tpu'", "ddp_cpu"]),
    (["model.compile=tpu_magic"], 2, ["model.compile = 'tpu_magic'", "inductor", "aot_eager"]),
    (["model.compile=true", "model.compile_mode=fastest"], 2, ["model.compile_mode = 'fastest'", "reduce-overhead"]),
    (["data.on_device=maybe"], 2, ["data.on_device = 'maybe'", "auto"]),
    (["logger=tensorbord"], 1, ["Could not find 'logger/tensorbord'", "tensorboard", "mlflow", "wandb"]),
    (["logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:9"], 2,
     ["logger.mlflow.tracking_uri = http://127.0.0.1:9 cannot be reached", "start the MLflow server"]),
    (["+data.augment.rotate=10"], 2, ["data.augment has unknown keys ['rotate']", "crop_padding"]),
    (["data.eval_batch_size=-3"], 2, ["data.eval_batch_size = -3"]),
    (["data.classes=[]"], 2, ["data.classes = []"]),
    (["data.mean=[0.1,0.2]"], 2, ["data.mean has 2 values", "one per channel (1)"]),
    (["+optim.momentum=0.9"], 2, ["torch.optim.Adam", "unexpected keyword argument 'momentum'"]),
    (["model.reg=-1"], 2, ["Invalid weight_decay value: -1", "model.reg"]),
    (["model.label_smoothing=2"], 2, ["model.label_smoothing = 2", "0 <= x < 1"]),
    (["seed=abc"], 2, ["seed = 'abc'; expected an integer"]),
    (["scheduler=step", "scheduler.step_size=0"], 2, ["scheduler (torch.optim.lr_scheduler.StepLR)"]),
    (["scheduler=cosine", "scheduler.T_max=abc"], 2, ["scheduler (torch.optim.lr_scheduler.CosineAnnealingLR)"]),
    (["checkpoint_every_n_steps=0"], 2, ["checkpoint_every_n_steps = 0"]),
    (["trainer.accelerator=gpu"], 2, ["trainer: MisconfigurationException", "gpu"]),
    (["optim=sgd", "+optim.weight_decay=0.1"], 2, ["both model.reg and optim.weight_decay are set"]),
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


def test_unwritable_output_folder(tmp_path):
    proc = subprocess.run([sys.executable, "src/train.py", "hydra.run.dir=/proc/cnnlab-cannot-write-here"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot write the output folder /proc/cnnlab-cannot-write-here" in proc.stderr


def test_eval_needs_a_checkpoint_and_matching_data(train, trained_run):
    run = train(script="eval.py")
    assert run.returncode == 1 and "Missing mandatory value: ckpt_path" in run.stderr
    run = train(f"ckpt_path={trained_run.dir}/checkpoints/best.ckpt", "data=mnist", script="eval.py")
    assert run.returncode == 2 and "the checkpoint was trained on [1, 8, 8]" in run.stderr
