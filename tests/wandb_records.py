"""Read back what an offline wandb run recorded (what `wandb sync` would upload), and a fixture
that runs wandb offline with its caches under the test's tmp_path."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
import wandb
from wandb.proto import wandb_internal_pb2

# A .wandb file is a leveldb-style log: a 7-byte file header, then 32 KiB blocks of chunks, each
# with a 7-byte header (crc32, length, type); a record is one FULL chunk or FIRST..MIDDLE..LAST.
WANDB_BLOCK = 32768
CHUNK_HEADER = struct.Struct("<IHB")
FULL, LAST = 1, 4
FILE_HEADER = 7


def wandb_records(run: Path, patience: float = 30.0) -> list[wandb_internal_pb2.Record]:
    """Every record of the offline run folder `run` (what `wandb sync` would upload). wandb's
    writer may still be flushing a run that has returned: wait a little for its exit record,
    the last one it writes."""
    deadline = time.monotonic() + patience
    while not of_type(records := read_records(run), "exit") and time.monotonic() < deadline:
        time.sleep(0.5)
    return records


def read_records(run: Path) -> list[wandb_internal_pb2.Record]:
    """The complete records written so far to the .wandb file of the run folder `run`."""
    (path,) = run.glob("run-*.wandb")
    data = path.read_bytes()
    assert data.startswith(b":W&B")
    records, pending, pos = [], b"", FILE_HEADER
    while pos + CHUNK_HEADER.size <= len(data):
        if WANDB_BLOCK - pos % WANDB_BLOCK < CHUNK_HEADER.size:
            pos += WANDB_BLOCK - pos % WANDB_BLOCK
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        end = pos + CHUNK_HEADER.size + length
        if end > len(data):  # a chunk still being written
            break
        pending += data[pos + CHUNK_HEADER.size : end]
        pos = end
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def of_type(records: list, name: str) -> list:
    """The payloads of the records of one kind (config, history, exit, ...)."""
    return [getattr(r, name) for r in records if r.WhichOneof("record_type") == name]


def exit_records(run: Path) -> list:
    """The exit records of an offline run (waiting a little for the first one)."""
    return of_type(wandb_records(run), "exit")


def as_dict(items) -> dict:
    """Decode wandb's (possibly nested) key / JSON value items into a nested dict."""
    decoded: dict = {}
    for item in items:
        *parents, key = item.nested_key or [item.key]
        node = decoded
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = json.loads(item.value_json)
    return decoded


def synced_config(records: list) -> dict:
    """The run config as wandb holds it."""
    return as_dict(item for config in of_type(records, "config") for item in config.update)


def history(records: list) -> list[dict]:
    """The logged rows, one dict per wandb step."""
    return [as_dict(row.item) for row in of_type(records, "history")]


def offline_run(save_dir: Path) -> Path:
    """The only offline wandb run under `save_dir`."""
    (run,) = (save_dir / "wandb").glob("offline-run-*")
    return run


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    """wandb in offline mode, writing its caches under tmp_path (never $HOME or the repo)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        folder = tmp_path / "wandb_home" / name.lower()
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    yield
    if wandb.run is not None:  # a failed test must not leave its run to the next one
        wandb.finish()
