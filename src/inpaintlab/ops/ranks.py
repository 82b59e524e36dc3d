"""Per-process state under distributed training: gathering a value from every rank, saving and
restoring random generators, and picking one rank's entry from a gathered list."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger("inpaintlab")


def gather_from_ranks(value: Any) -> list[Any]:
    """`value` of every process, in rank order (a one-item list without torch.distributed).
    A collective call: every rank must reach it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def generator_state(generator: torch.Generator | None) -> dict[str, Any] | None:
    """A torch.Generator's device type and state, as checkpoint-safe values."""
    if generator is None:
        return None
    return {"device": generator.device.type, "state": generator.get_state()}


def restore_generator(state: dict[str, Any] | None, device: torch.device) -> torch.Generator | None:
    """A generator on `device` continuing from `state`; None (with a warning when there was a
    state) when there is none or it was saved on another device type."""
    if state is None:
        return None
    generator = torch.Generator(device)
    if state["device"] == generator.device.type:
        return generator.set_state(state["state"])
    log.warning(
        "a generator saved on %s is resumed on %s: it restarts from its seed",
        state["device"],
        generator.device.type,
    )
    return None


def rank_entry(states: list[Any] | None, rank: int, world_size: int, what: str) -> Any:
    """This rank's entry of per-rank states saved by `world_size` processes, or None (with a
    warning) when the checkpoint was written by a different number of processes."""
    if states is None:
        return None
    if len(states) != world_size:
        log.warning(
            "%s were saved by %d processes and are resumed by %d: they restart from their seeds",
            what,
            len(states),
            world_size,
        )
        return None
    return states[rank]
