"""Beyond one process: two nodes on one box (NODE_RANK 0 and 1 over gloo), in memory and streamed; a node that
cannot reach its master; a sweep's jobs side by side with hydra/launcher=parallel, one device each."""

from __future__ import annotations

import csv
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_scale import sweep
from tests.test_stream import digits_shards  # noqa: F401 - the shards fixture
from tests.test_train_cli import read_confusion

TWO_NODES = (
    "trainer=ddp_cpu",
    "trainer.num_nodes=2",
    "trainer.devices=1",
    "arch=small",
    "trainer.max_epochs=2",
    "data.batch_size=64",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(rank: int, port: int, run_dir: Path, *overrides: str, **env) -> subprocess.Popen:
    env = {
        **os.environ,
        "NODE_RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "PYTHONPATH": str(ROOT),
        "CNNLAB_DATA_DIR": str(run_dir.parent / "data"),
        **env,
    }
    cmd = [sys.executable, "src/train.py", *overrides, f"hydra.run.dir={run_dir}"]
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")  # noqa: SIM115 - a file, not a pipe that could fill up
    node = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )  # its own process group: a kill reaches the processes it forks
    node.log_path = Path(log.name)
    return node


def _finish(nodes: list[subprocess.Popen], timeout: float) -> list[str]:
    """Both nodes' output; a node that fails stops the other at once (it would wait for its peer until the timeout)."""
    deadline = time.monotonic() + timeout
    while any(node.poll() is None for node in nodes) and time.monotonic() < deadline:
        if any(node.poll() not in (None, 0) for node in nodes):
            break
        time.sleep(0.5)
    for node in nodes:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    return [node.log_path.read_text() for node in nodes]


@pytest.mark.parametrize("data", [pytest.param("in_memory", marks=pytest.mark.slow), "stream"])
def test_two_nodes_on_one_box_count_every_image_once(tmp_path, data, digits_shards):  # noqa: F811
    stream = ("data=stream", f"data.root={digits_shards}") if data == "stream" else ()
    probe = ("+callbacks.probe._target_=tests.probes.RecordTrainImages", f"+callbacks.probe.folder={tmp_path / 'seen'}")
    port = _free_port()
    nodes = [_node(rank, port, tmp_path / f"node{rank}", *TWO_NODES, *stream, *probe) for rank in (0, 1)]
    outputs = _finish(nodes, timeout=400)
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    # one test set, evaluated half on each node, reduced on the master, which alone writes the reports
    assert read_confusion(tmp_path / "node0" / "confusion_matrix.csv").sum() == 360
    assert (tmp_path / "node0" / "summary.txt").is_file()
    assert not {"results.json", "summary.txt", "confusion_matrix.csv", "metrics.csv"} & {
        p.name for p in (tmp_path / "node1").iterdir()
    }
    # every training image at most once per epoch across the two nodes, the same number of batches on each
    seen = {rank: (tmp_path / "seen" / f"rank{rank}.txt").read_text().split("\n")[:-1] for rank in (0, 1)}
    assert len(seen[0]) == len(seen[1])
    for epoch in ("0", "1"):
        images = [line.split()[1] for rank in (0, 1) for line in seen[rank] if line.split()[0] == epoch]
        assert len(images) == len(set(images)) >= 1257 - 2 * 2 * 64, epoch


def test_a_node_that_cannot_reach_its_master_stops_in_one_sentence(tmp_path):
    port = _free_port()  # nobody listens there
    start = time.monotonic()
    node = _node(1, port, tmp_path / "node1", *TWO_NODES, "master_timeout_s=2")
    node.wait(timeout=120)
    output = node.log_path.read_text()
    assert node.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert f"node 1 could not reach the master at 127.0.0.1:{port} within 2 s" in output
    assert time.monotonic() - start < 60


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"NODE_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29x00"}, "MASTER_PORT='29x00'; expected the"),
        (
            {"NODE_RANK": "0", "MASTER_PORT": "99999"},
            "MASTER_PORT='99999'; expected the master's port number, 1..65535",
        ),
        ({"NODE_RANK": "0", "MASTER_PORT": "abc"}, "MASTER_PORT='abc'"),  # the master opens it: checked there too
        ({"NODE_RANK": "1"}, "NODE_RANK=1 with trainer.num_nodes=2 needs MASTER_ADDR"),  # would wait forever
        ({"NODE_RANK": "2", "MASTER_ADDR": "127.0.0.1"}, "NODE_RANK='2'; expected this machine's rank, 0..1"),
        ({"NODE_RANK": "one", "MASTER_ADDR": "127.0.0.1"}, "NODE_RANK='one'"),
    ],
)
def test_the_node_environment_is_checked_before_anything_is_built(env, fragment):
    from cnnlab.checks.errors import ConfigError
    from cnnlab.nodes import read_nodes

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        read_nodes(2, 300, env)
    assert read_nodes(1, 300, {"NODE_RANK": "1"}) is None  # one node: nothing to wait for
    master = read_nodes(2, 5, {"NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1"})
    assert (master.node, master.host, master.port, master.timeout_s) == (1, "10.0.0.1", 29500, 5)


def test_parallel_sweep_runs_jobs_side_by_side_one_device_each_and_again_only_what_failed(tmp_path):
    out = tmp_path / "sweep"
    args = ("hydra/launcher=parallel", "arch=small", "trainer.max_epochs=1", "optim.lr=-1,1e-3,3e-3",
            "+callbacks.probe._target_=tests.probes.RecordVisibleDevices",
            "+callbacks.probe.folder=${hydra:runtime.output_dir}")
    env = {"CUDA_VISIBLE_DEVICES": "3,5", "PYTHONPATH": str(ROOT)}
    proc = sweep(out, *args, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]  # finished, and says a job failed
    assert "1 of 3 jobs did not complete" in proc.stderr
    with open(out / "summary.csv", newline="") as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert rows["0"]["status"].startswith("failed: optim.lr = ") and rows["0"]["overrides"].startswith("arch=small")
    assert (out / "0" / "error.txt").is_file() and (out / "summary.png").is_file()
    assert rows["1"]["status"] == rows["2"]["status"] == "completed"  # the failure stopped nothing
    assert all(0 <= float(rows[j]["test/acc"]) <= 1 and (out / j / "confusion_matrix.csv").is_file() for j in "12")
    # jobs 1 and 2 ran at the same time, in two worker processes, each seeing one of the two devices
    spans = {
        j: ((out / j / ".hydra" / "config.yaml").stat().st_mtime, (out / j / "results.json").stat().st_mtime)
        for j in ("1", "2")
    }
    assert spans["1"][0] < spans["2"][1] and spans["2"][0] < spans["1"][1], spans
    devices = {j: (out / j / "devices.txt").read_text().split() for j in ("1", "2")}
    assert {devices["1"][0], devices["2"][0]} == {"3", "5"} and devices["1"][1] != devices["2"][1]
    # the same sweep into the same folder runs again only what did not finish
    done = {j: (out / j / "results.json").stat().st_mtime_ns for j in "12"}
    assert sweep(out, *args, env=env).returncode == 1
    assert {j: (out / j / "results.json").stat().st_mtime_ns for j in "12"} == done


def _claim(folder, slots, gpus, ready, results):
    from cnnlab.devices import claim_device

    results.put(claim_device(folder, slots, gpus))
    ready.wait()  # hold the slot until every process has claimed one


@pytest.mark.parametrize("slots, gpus, expected", [(2, ["0", "1"], ["0", "1"]), (4, ["5", "7"], ["5", "5", "7", "7"])])
def test_each_worker_claims_its_own_device(tmp_path, slots, gpus, expected):
    context = multiprocessing.get_context("fork")
    ready, results = context.Barrier(slots), context.Queue()
    workers = [context.Process(target=_claim, args=(tmp_path, slots, gpus, ready, results)) for _ in range(slots)]
    for w in workers:
        w.start()
    claimed = sorted(results.get(timeout=30) for _ in workers)
    for w in workers:
        w.join(timeout=30)
    assert claimed == expected
