"""Runs across machines: a node that cannot reach the master says so in one sentence instead of waiting forever.

Lightning starts every node the same way (`NODE_RANK`, `MASTER_ADDR`, `MASTER_PORT` set by hand, by torchrun or by
SLURM); the master opens its rendezvous port only when its own run reaches training, so the others wait for it,
but not without end.
"""

from __future__ import annotations

import socket
import time

from cnnlab.checks.nodes import Master
from cnnlab.errors import ConfigError


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
