"""Checksummed torch files (checkpoints, trained parameters) and the random-number state a resume must restore.

A damaged file is never loaded: it is discarded and the work it held is recomputed.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch

from bench.store import CorruptFile, read_checked, write_checked

log = logging.getLogger("bench.checkpoint")


def save_torch(path: Path, payload: Any) -> None:
    """torch.save, written atomically with a checksum (checkpoints and trained parameters are never read
    half-written or damaged)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_checked(path, buffer.getvalue())


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    """What save_torch wrote (tensors and plain containers only: weights_only). None when there is no file, or when
    it is damaged (truncated, changed, checksum missing): then it is removed with a warning, so that a checkpoint
    is recomputed from the start instead of being used."""
    try:
        data = read_checked(path)
    except CorruptFile as exc:
        log.warning("%s %s: discarded; it will be recomputed", exc.path, exc.reason)
        exc.discard()
        return None
    if data is None:
        return None
    return torch.load(io.BytesIO(data), map_location=device, weights_only=True)


def rng_state() -> dict[str, Any]:
    """The CPU generator and, when CUDA is in use, every CUDA generator: dropout draws from them, so an exact
    resume restores both."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any] | torch.Tensor) -> None:
    if isinstance(state, torch.Tensor):  # checkpoints written before CUDA states were saved
        torch.set_rng_state(state.cpu())
        return
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
