"""Checkpoints: written atomically, read with errors that name the file."""

import os
import tempfile
from pathlib import Path

import torch

from .model import CRNN, ModelConfig

SHIPPED = {name: Path(__file__).parent / "weights" / f"{name}.pt" for name in ("default", "local")}
"""The pretrained models shipped inside the package, by the name ``load_model`` and
``train --init`` accept (see the README's model cards): ``default`` reads the reference
CAPTCHAs best; ``local`` (architecture ``local``) is the better start for fine-tuning
on another style."""


def resolve(path) -> Path:
    """``path`` itself, or the file of a shipped model when it is one of ``SHIPPED``'s
    names (``None``: ``default``); a shipped file missing from the install raises
    FileNotFoundError."""
    if not (path is None or (isinstance(path, str) and path in SHIPPED)):
        return Path(path)
    shipped = SHIPPED[path or "default"]
    if not shipped.is_file():
        raise FileNotFoundError(f"the shipped model {shipped} is missing from this install; "
                                "reinstall crnn_fast or pass a checkpoint")
    return shipped


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
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path, content: bytes) -> None:
    """Writes ``content`` to ``path`` atomically (temp file, fsync, rename)."""
    _write_atomic(path, lambda f: f.write(content))


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


def load_model(path=None, device="cpu") -> CRNN:
    """The model a checkpoint holds, in eval mode on ``device``; ``path=None`` (or
    ``"default"``) loads the pretrained model shipped in the package (5-character
    CAPTCHAs over a-z, A-Z, 0-9, 150x40, rendered by the ``captcha`` package; see the
    README's model cards), ``"local"`` the shipped starting point for fine-tuning.

    Reads the checkpoints ``crnn_fast.train`` writes (``best.pt``, ``last.pt``) and the
    weights-only files ``python -m crnn_fast.export --weights`` writes."""
    return model_from_state(load(resolve(path))).to(device).eval()


def model_from_state(state: dict) -> CRNN:
    """The model that a checkpoint or weights file read by :func:`load` holds (float32,
    on the CPU, in training mode)."""
    model = CRNN(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model


def save_weights(state: dict, path, **info) -> None:
    """Writes the inference part of a training checkpoint to ``path`` atomically: the
    weights (floating-point tensors as float16, which halves the file; ``load_model``
    restores float32) and the model config, plus ``info`` (JSON-able facts about the
    run, kept under ``"info"``). ``load_model`` reads it like a checkpoint."""
    weights = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    save({"model": weights, "model_config": state["model_config"], "info": info}, path)
