"""A new user's first steps through the real command line: the design card's command, the seed's list pasted as
it stands, wrong files, and what a run prints when its output is a file, a pipe or a terminal."""

from __future__ import annotations

import json
import logging
import math
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from cnnlab.checks.errors import ArchError
from cnnlab.layers import build_network
from cnnlab.progress import LineProgress
from tests import data_files
from tests.conftest import ROOT, bare_trainer, compose_train, train_plan
from tests.test_layer_spec import SEED_PYTHON

DESIGN_CARD = ("arch=fer_arch", "data=cifar100")


def test_fer_arch_is_the_seed_list_defined_once():
    fer, seed = compose_train(*DESIGN_CARD).arch, compose_train("arch=seed").arch
    assert fer.name == "fer_arch" and seed.name == "seed" and fer.layers == seed.layers
    assert "layers:" not in (ROOT / "conf/arch/seed.yaml").read_text()  # a reference, not a copy
    assert compose_train(*DESIGN_CARD).data.family == "cifar100"


def test_design_card_command_trains(fit, tmp_path):
    data_files.write_cifar100(tmp_path / "data", n_train=60, n_test=40)
    # the design card's words, plus a budget for tiny files
    run = fit(
        *DESIGN_CARD, "trainer.max_epochs=1", "data.val_size=20", "data.download=false", data_dir=tmp_path / "data"
    )
    table = (run.dir / "arch_table.txt").read_text()
    assert "input 3x32x32, 100 classes: 10 layers" in table
    results = run.results()
    assert abs(results["test/acc"] * 40 - round(results["test/acc"] * 40)) < 1e-4  # all 40 test images counted
    assert json.loads((run.dir / "classification_report.json").read_text())["macro avg"]["support"] == 40
    assert math.isfinite(results["train/loss"]) and "val/acc" in results


def test_seed_readme_assignment_is_read_without_running_it(fit, tmp_path):
    pasted = tmp_path / "seed_arch.txt"
    pasted.write_text("ARCH = " + SEED_PYTHON + "\n")
    run = fit("arch=file", f"arch.path={pasted}", "debug=fast")
    seed = build_network(compose_train("arch=fer_arch").arch.layers, (1, 8, 8), 10)  # digits: 8x8 grey
    assert (run.dir / "arch_table.txt").read_text().strip() == seed.table()
    marker = tmp_path / "ran"
    for text in (
        f"ARCH = [{{'type': 'T'}}]\nopen({str(marker)!r}, 'w')",  # a second statement
        f"ARCH = open({str(marker)!r}, 'w')",
    ):  # a call, not a literal
        pasted.write_text(text)
        with pytest.raises(ArchError) as bad:
            train_plan(tmp_path / "bad", "arch=file", f"arch.path={pasted}")
        assert "nor a Python literal list" in str(bad.value) and "ARCH = [...]" in str(bad.value)
        assert not marker.exists()


def test_binary_arch_file_and_non_checkpoint_are_one_sentence(train, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    with pytest.raises(ArchError, match=f"{photo} is not a text file.*JSON"):
        train_plan(tmp_path / "bad", "arch=file", f"arch.path={photo}")
    notes = tmp_path / "notes.ckpt"
    notes.write_text("these are my notes, not weights\n")
    run = train(f"ckpt_path={notes}", script="eval.py")
    assert run.returncode == 2 and "Traceback" not in run.output and "weights_only" not in run.output
    assert "is not a cnnlab checkpoint (a torch.save file written by train.py" in run.stderr
    assert "found 32 bytes of text" in run.stderr


def test_logs_speak_without_a_terminal(tmp_path):
    """stdout to a file, as under nohup or SLURM: one line per epoch, in order, in the console and train.log."""
    out = tmp_path / "stdout.txt"
    env = {**os.environ, "CNNLAB_DATA_DIR": str(tmp_path / "data"), "PYTHONWARNINGS": "ignore"}
    with open(out, "w") as stdout:
        proc = subprocess.run(
            [sys.executable, "src/train.py", "arch=small", "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}/run"],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console, logged = out.read_text(), (tmp_path / "run" / "train.log").read_text()
    pattern = re.compile(
        r"epoch (\d)/2  train loss [\d.]+ acc [\d.]+%  val loss [\d.]+ acc [\d.]+%  "
        r"[\d,]+ img/s  elapsed \d+s"
    )
    for text in (console, logged):
        assert [m.group(1) for m in pattern.finditer(text)] == ["1", "2"], text[-3000:]
    assert "left ~" in console.split("epoch 1/2")[1].splitlines()[0]  # time left after the first epoch
    assert "━" not in console  # no progress bar drawn into a file
    assert console.rstrip().splitlines()[-1].startswith("run directory:")


def test_line_progress_within_a_long_epoch(tmp_path, caplog):
    from tests.test_airbench_pieces import _model

    model, dm = _model(tmp_path, [{"type": "GAP"}, {"type": "T"}])
    trainer = bare_trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=1,
        callbacks=[LineProgress(every_s=0)],
    )
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        trainer.fit(model, datamodule=dm)
    lines = [r.getMessage() for r in caplog.records if r.name == "cnnlab"]
    assert [line.split("  ")[1] for line in lines[:3]] == ["batch 1/3", "batch 2/3", "batch 3/3"]
    assert "img/s" in lines[0] and "epoch left" in lines[0]
    assert lines[-1].startswith("epoch 1/1  train loss") and "val loss" in lines[-1]


def _run_in_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run a command with stdout on a pseudo-terminal (as in an interactive shell) and return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_summary_is_the_last_thing_printed_in_a_terminal(tmp_path):
    env = {
        **os.environ,
        "CNNLAB_DATA_DIR": str(tmp_path / "data"),
        "PYTHONWARNINGS": "ignore",
        "COLUMNS": "120",
        "TERM": "xterm",
    }
    output = _run_in_terminal(
        [sys.executable, "src/train.py", "arch=small", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}/run"], env
    )
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "\n")
    assert "Testing" in plain  # the rich progress bars are drawn in a terminal
    lines = [line for line in plain.splitlines() if line.strip()]
    assert lines[-1].startswith("run directory:"), lines[-5:]
    assert plain.rindex("Testing") < plain.rindex("test error rate:")
