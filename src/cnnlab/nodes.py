"""Runs across machines: a node that cannot reach the master says so in one sentence instead of waiting forever.

Lightning starts every node the same way (`NODE_RANK`, `MASTER_ADDR`, `MASTER_PORT` set by hand, by torchrun or by
SLURM); the master opens its rendezvous port only when its own run reaches training, so the others wait for it,
but not without end.
"""

from __future__ import annotations

import os
import socket
import time

from cnnlab.errors import ConfigError


def master_address() -> tuple[str, int] | None:
    """The master's address when this process is a non-master node started by hand (NODE_RANK > 0); torchrun and
    SLURM start their nodes together and meet on their own."""
    node = os.environ.get("NODE_RANK")
    if node in (None, "", "0") or "MASTER_ADDR" not in os.environ or "TORCHELASTIC_RUN_ID" in os.environ:
        return None
    port = os.environ.get("MASTER_PORT", "29500")
    if not port.isdigit():
        raise ConfigError(f"MASTER_PORT={port!r}; expected the master's port number, e.g. MASTER_PORT=29500.")
    return os.environ["MASTER_ADDR"], int(port)


def wait_for_master(num_nodes: int, timeout_s: float) -> None:
    """Before anything is built: on a non-master node, wait until the master's port answers, or stop."""
    address = master_address() if num_nodes > 1 else None
    if address is None:
        return
    host, port = address
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"node {os.environ['NODE_RANK']} could not reach the master at {host}:{port} within "
                    f"{timeout_s:g} s ({err.strerror or err}); start node 0 (NODE_RANK=0) with the same MASTER_ADDR "
                    "and MASTER_PORT, check that this machine can reach that address and port (firewall), or wait "
                    "longer with master_timeout_s=SECONDS.") from None
            time.sleep(0.5)
