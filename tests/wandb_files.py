"""Reading W&B's offline ``.wandb`` files back in tests (no network, no W&B account)."""

from __future__ import annotations

import json
from pathlib import Path


def wandb_records(path: Path):
    """The records of a ``.wandb`` file: a W&B header, then LevelDB-log framed protobufs.

    wandb 0.31 ships no reader for its own files (its Go core writes them), so the framing
    is read here: 32 KiB blocks, each record ``crc(4) length(2) type(1) data``, types full,
    first, middle, last.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, partial = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(partial)
            yield record


def offline_history(path: Path) -> list[tuple[int, dict]]:
    """``(step, {key: value})`` of every history record of one ``.wandb`` file."""
    return [(r.history.step.num, {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                  for i in r.history.item})
            for r in wandb_records(path) if r.WhichOneof("record_type") == "history"]
