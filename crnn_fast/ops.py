"""Typed Python wrappers over the compiled ``torch.ops.crnn_fast`` kernels.

This is the only module that calls ``torch.ops.crnn_fast``. Each wrapper checks its
arguments where they enter (naming the bad one), fills in defaults and calls the op;
each op also has a fake implementation so ``torch.compile(fullgraph=True)`` traces it.
"""

import operator
from collections.abc import Sequence
from typing import NamedTuple, Optional, Union

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DEVICE_TYPES = ("cpu", "cuda")
INT32_MAX = 2**31 - 1

Lengths = Optional[Union[torch.Tensor, Sequence[int]]]


class GreedyDecodeResult(NamedTuple):
    tokens: torch.Tensor
    """(B, T) int32 labels, each row padded with -1 after its length."""
    lengths: torch.Tensor
    """(B,) int32 number of labels per row."""


def _check_log_probs(log_probs) -> tuple[int, int, int]:
    if not isinstance(log_probs, torch.Tensor):
        raise TypeError(f"log_probs must be a torch.Tensor, got {type(log_probs).__name__}")
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be 3-D (B, T, C), got shape {tuple(log_probs.shape)}")
    if log_probs.dtype not in FLOAT_DTYPES:
        raise TypeError(f"log_probs must be float32, float64, float16 or bfloat16, got {log_probs.dtype}")
    if log_probs.device.type not in DEVICE_TYPES:
        raise ValueError(f"log_probs must be on a CPU or CUDA device, got {log_probs.device}")
    batch, frames, classes = log_probs.shape
    if classes < 1:
        raise ValueError("log_probs must have at least one class (C >= 1)")
    if classes > INT32_MAX:
        raise ValueError(f"log_probs has C={classes} classes, more than int32 token ids can hold")
    return batch, frames, classes


def _check_class_index(value, name: str, classes: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        index = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not 0 <= index < classes:
        raise ValueError(f"{name} must be in [0, C) = [0, {classes}), got {index}")
    return index


def _check_lengths(lengths: Lengths, name: str, batch: int, limit: int, device: torch.device) -> torch.Tensor:
    """Returns ``lengths`` as an int64 (B,) tensor on ``device``; None means ``limit`` for every row."""
    if lengths is None:
        return torch.full((batch,), limit, dtype=torch.int64, device=device)
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a tensor or a sequence of ints: {err}") from None
        if lengths.numel() == 0:  # as_tensor([]) is float32
            lengths = lengths.long()
    if lengths.dtype == torch.bool or lengths.dtype.is_floating_point or lengths.dtype.is_complex:
        raise TypeError(f"{name} must hold integers, got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,) = ({batch},), got {tuple(lengths.shape)}")
    if not torch.compiler.is_compiling() and batch > 0:
        # Checked where the lengths live, before any copy to the device; a CUDA
        # tensor costs one synchronisation here.
        bad = (lengths < 0) | (lengths > limit)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name}[{i}] = {int(lengths[i])} is outside [0, T={limit}]")
    return lengths.to(device=device, dtype=torch.int64)


def ctc_greedy_decode(log_probs: torch.Tensor, input_lengths: Lengths = None, blank: int = 0) -> GreedyDecodeResult:
    """Best-path CTC decoding of a batch.

    For every frame the most probable class is taken (ties go to the lowest index,
    NaN counts as the largest value, as in ``torch.argmax``); repeated classes are
    collapsed and blanks dropped.

    Args:
        log_probs: (B, T, C) scores, batch-first, float32/float64/float16/bfloat16, on
            CPU or CUDA. Any strides (no copy is made). Only the order of each frame's
            scores matters, so log-probs, logits and probs decode alike.
        input_lengths: (B,) integer frame counts in [0, T], a tensor on any device or a
            sequence of ints; ``None`` uses T for every row.
        blank: index of the CTC blank class, in [0, C).

    Returns:
        ``GreedyDecodeResult(tokens, lengths)`` on ``log_probs``' device: ``tokens`` (B, T)
        int32 padded with -1 after each row's length, ``lengths`` (B,) int32.
    """
    batch, frames, classes = _check_log_probs(log_probs)
    blank = _check_class_index(blank, "blank", classes)
    lengths = _check_lengths(input_lengths, "input_lengths", batch, frames, log_probs.device)
    tokens, out_lengths = torch.ops.crnn_fast.ctc_greedy_decode.default(log_probs, lengths, blank)
    return GreedyDecodeResult(tokens, out_lengths)


@torch.library.register_fake("crnn_fast::ctc_greedy_decode")
def _ctc_greedy_decode_fake(log_probs, input_lengths, blank):
    batch, frames = log_probs.shape[0], log_probs.shape[1]
    return (
        log_probs.new_empty((batch, frames), dtype=torch.int32),
        log_probs.new_empty((batch,), dtype=torch.int32),
    )
