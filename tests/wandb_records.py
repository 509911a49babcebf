"""Read the records of an offline W&B run file (`run-<id>.wandb`) without the W&B service, to check what was logged.

The file is W&B's LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each a 7-byte header
(crc32, length, type: 1 full, 2 first, 3 middle, 4 last) and a piece of a protobuf `Record`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768


def records(path: Path) -> Iterator[pb.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def logged(path: Path) -> tuple[set[str], set[str]]:
    """(history keys, config keys) of the run."""
    history, config = set(), set()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history |= {i.key or "/".join(i.nested_key) for i in record.history.item}
        elif kind == "config":
            config |= {i.key or "/".join(i.nested_key) for i in record.config.update}
    return history, config
