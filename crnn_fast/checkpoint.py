"""Checkpoints: written atomically, read with errors that name the file."""

import os
import tempfile
from pathlib import Path

import torch

from .model import CRNN, ModelConfig


def _write_atomic(path, write) -> None:
    """Calls ``write(file)`` on a temp file in ``path``'s folder, fsyncs it, then renames
    it over ``path``: a crash or a full disk leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def save(state: dict, path) -> None:
    """Writes ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    _write_atomic(path, lambda f: torch.save(state, f))


def write_text_atomic(path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically (temp file, fsync, rename)."""
    _write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def load(path, map_location="cpu") -> dict:
    """Reads a checkpoint written by :func:`save`; a missing, truncated or foreign file
    raises an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is truncated or corrupt and cannot be read: {err}") from err
    if not isinstance(state, dict) or "model" not in state or "model_config" not in state:
        raise ValueError(f"{path} is not a crnn_fast checkpoint (no model weights and config in it)")
    return state


def load_model(path, device="cpu") -> CRNN:
    """The model a checkpoint holds, in eval mode on ``device``."""
    state = load(path)
    model = CRNN(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()
