"""Runs across machines: the node environment (NODE_RANK, MASTER_ADDR, MASTER_PORT, set by hand, by torchrun or by
SLURM) checked before anything is built, and a node that cannot reach the master says so in one sentence instead of
waiting forever (the master opens its rendezvous port only when its own run reaches training)."""

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cnnlab.checks.errors import ConfigError
from cnnlab.checks.fields import OptionError


@dataclass(frozen=True)
class Master:
    """Where a non-master node started by hand finds its master, and how long it waits."""

    node: int
    host: str
    port: int
    timeout_s: float


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise OptionError(f"MASTER_PORT={text!r}; expected the master's port number, 1..65535, e.g. "
                          "MASTER_PORT=29500.")
    return int(text)


def read_nodes(num_nodes: int, timeout_s: float, env: Mapping[str, str] = os.environ) -> Master | None:
    """The master to wait for, when this process is a non-master node started by hand (NODE_RANK > 0); None on the
    master, on one node, and under torchrun or SLURM (they start their nodes together and meet on their own)."""
    if "MASTER_PORT" in env:
        _port(env["MASTER_PORT"])  # the master opens this port: a bad one would fail deep inside torch
    if num_nodes <= 1 or "TORCHELASTIC_RUN_ID" in env:
        return None
    node = env.get("NODE_RANK", "0") or "0"
    if not node.isdigit() or int(node) >= num_nodes:
        raise OptionError(f"NODE_RANK={node!r}; expected this machine's rank, 0..{num_nodes - 1} for "
                          f"trainer.num_nodes={num_nodes} (0 on the master).")
    if node == "0":
        return None
    if not env.get("MASTER_ADDR"):
        raise OptionError(f"NODE_RANK={node} with trainer.num_nodes={num_nodes} needs MASTER_ADDR (and MASTER_PORT, "
                          "default 29500): the master's address, the same on every node, e.g. MASTER_ADDR=10.0.0.1.")
    return Master(int(node), env["MASTER_ADDR"], _port(env.get("MASTER_PORT", "29500")), timeout_s)


def wait_for_master(master: Master) -> None:
    """Before anything is built: on a non-master node, wait until the master's port answers, or stop."""
    deadline = time.monotonic() + master.timeout_s
    while True:
        try:
            with socket.create_connection((master.host, master.port), timeout=2):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"node {master.node} could not reach the master at {master.host}:{master.port} within "
                    f"{master.timeout_s:g} s ({err.strerror or err}); start node 0 (NODE_RANK=0) with the same "
                    "MASTER_ADDR and MASTER_PORT, check that this machine can reach that address and port "
                    "(firewall), or wait longer with master_timeout_s=SECONDS.") from None
            time.sleep(0.5)
