"""Typed Python wrappers over the compiled ``torch.ops.crnn_fast`` kernels.

This is the only module that calls ``torch.ops.crnn_fast``. Each wrapper checks its
arguments where they enter (naming the bad one), fills in defaults and calls the op;
each op also has a fake implementation so ``torch.compile(fullgraph=True)`` traces it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import NamedTuple, Optional, Union

import torch

from ._checks import as_int

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
DEVICE_TYPES = ("cpu", "cuda")
INT32_MAX = 2**31 - 1

Lengths = Optional[Union[torch.Tensor, Sequence[int]]]


class GreedyDecodeResult(NamedTuple):
    tokens: torch.Tensor
    """(B, T) int32 labels, each row padded with -1 after its length."""
    lengths: torch.Tensor
    """(B,) int32 number of labels per row."""


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype == torch.bool or dtype.is_floating_point or dtype.is_complex)


def _as_tensor(value, name: str, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or a sequence of {what}: {err}") from None
    return tensor.long() if tensor.numel() == 0 else tensor  # as_tensor([]) is float32


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
    index = as_int(value, name)
    if not 0 <= index < classes:
        raise ValueError(f"{name} must be in [0, C) = [0, {classes}), got {index}")
    return index


def _check_lengths(lengths: Lengths, name: str, batch: int, limit: int, device: torch.device) -> torch.Tensor:
    """Returns ``lengths`` as an int64 (B,) tensor on ``device``; None means ``limit`` for every row."""
    if lengths is None:
        return torch.full((batch,), limit, dtype=torch.int64, device=device)
    lengths = _as_tensor(lengths, name, "ints")
    if not _is_integer(lengths.dtype):
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


class BeamSearchResult(NamedTuple):
    tokens: torch.Tensor
    """(B, K, T) int32 labels of the K best prefixes, best first, padded with -1."""
    lengths: torch.Tensor
    """(B, K) int32 number of labels of each prefix (0 for a missing beam)."""
    scores: torch.Tensor
    """(B, K) float32 log-probability of each prefix over all its alignments (-inf for a missing beam)."""
    timesteps: torch.Tensor
    """(B, K, T) int32 frame of each label's most probable emission, padded with -1."""


MAX_BEAM_WIDTH = 4096


def _check_int_arg(value, name: str, low: int, high: Optional[int] = None) -> int:
    value = as_int(value, name)
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {'in ' if high is not None else ''}{bounds}, got {value}")
    return value


def _check_float_arg(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    return float(value)


def ctc_beam_search(
    log_probs: torch.Tensor,
    input_lengths: Lengths = None,
    beam_width: int = 10,
    top_paths: int = 1,
    blank: int = 0,
    blank_penalty: float = 0.0,
    cutoff_top_n: Optional[int] = None,
    cutoff_prob: float = 1.0,
) -> BeamSearchResult:
    """CTC prefix beam search over a batch.

    Keeps the ``beam_width`` most probable prefixes per frame, each with the
    log-probabilities of its alignments ending in a blank and in a label; identical
    prefixes are merged, and a repeated label needs a blank in between. Scores are
    log-probabilities summed over all alignments the beam kept (so a lower bound of
    the exact CTC probability, and equal to it when no prefix was pruned).

    Args:
        log_probs: (B, T, C) log-softmax scores, batch-first, float32/float64/float16/
            bfloat16, CPU or CUDA, any strides. NaN and +inf are rejected in the frames
            decoded (those past a row's input length are not read).
        input_lengths: (B,) frame counts in [0, T] (tensor on any device, or ints);
            ``None`` uses T for every row.
        beam_width: prefixes kept per frame, in [1, 4096].
        top_paths: K, the number of best prefixes returned per row, in [1, beam_width].
        blank: index of the CTC blank class, in [0, C).
        blank_penalty: subtracted from the blank's log-prob at every frame (> 0
            favours labels); the returned scores include it.
        cutoff_top_n: consider only the ``cutoff_top_n`` most probable classes of each
            frame (``None``: all), like ctcdecode.
        cutoff_prob: consider only the most probable classes of each frame whose
            cumulative probability reaches ``cutoff_prob``, in (0, 1] (1: all).

    Returns:
        ``BeamSearchResult(tokens, lengths, scores, timesteps)`` on ``log_probs``' device;
        rows with fewer than K distinct prefixes pad with length 0 and score -inf.
        (Under ``torch.compile`` a row holding NaN or +inf is not rejected: it comes
        back with no prefixes and NaN scores.)

    The CPU kernel decodes rows in parallel over torch's threads; the CUDA kernel
    decodes the batch in one launch, a thread per row. Both run the same code and each
    row needs a workspace of about 12 * beam_width * T + 300 * beam_width + 24 * C bytes,
    reused across rows: O(beam_width * T + C) per concurrent row, nothing proportional to
    B * T * C.
    """
    batch, frames, classes = _check_log_probs(log_probs)
    beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob = _beam_options(
        classes, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob)
    lengths = _check_lengths(input_lengths, "input_lengths", batch, frames, log_probs.device)
    out = BeamSearchResult(*torch.ops.crnn_fast.ctc_beam_search.default(
        log_probs, lengths, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob
    ))
    # The kernels check the frames they decode as they read them: a row with NaN or +inf
    # gets NaN scores (B * K values to look at here, not B * T * C).
    if not torch.compiler.is_compiling() and bool(out.scores.isnan().any()):
        _raise_nan_row(out.scores, log_probs, lengths)
    return out


def _beam_options(classes, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob):
    """The options of a beam search, checked, with cutoff_top_n at most ``classes``."""
    beam_width = _check_int_arg(beam_width, "beam_width", 1, MAX_BEAM_WIDTH)
    top_paths = _check_int_arg(top_paths, "top_paths", 1, beam_width)
    blank = _check_class_index(blank, "blank", classes)
    blank_penalty = _check_float_arg(blank_penalty, "blank_penalty")
    if not math.isfinite(blank_penalty):
        raise ValueError(f"blank_penalty must be finite, got {blank_penalty}")
    cutoff_top_n = classes if cutoff_top_n is None else _check_int_arg(cutoff_top_n, "cutoff_top_n", 1)
    cutoff_prob = _check_float_arg(cutoff_prob, "cutoff_prob")
    if not 0.0 < cutoff_prob <= 1.0:
        raise ValueError(f"cutoff_prob must be in (0, 1], got {cutoff_prob}")
    return beam_width, top_paths, blank, blank_penalty, min(cutoff_top_n, classes), cutoff_prob


def _raise_nan_row(scores: torch.Tensor, log_probs: torch.Tensor, lengths: torch.Tensor):
    """Names what made the first row with NaN scores fail: a NaN or +inf in its frames,
    else (streaming) its state."""
    b = int(scores.isnan().any(1).nonzero()[0])
    row = log_probs[b, : int(lengths[b])]
    bad = (torch.isnan(row) | torch.isposinf(row)).nonzero()
    if len(bad) == 0:
        raise ValueError(f"state row {b} is not a beam state that ctc_beam_search_chunk returned "
                         "(or its stream has passed 2**31 - 1 frames)")
    t, c = bad[0].tolist()
    raise ValueError(f"log_probs[{b}, {t}, {c}] is {row[t, c].item()}: log-probs must not be NaN or +inf")


_ENTRY_WORDS = 8  # int64 words per beam entry: sizeof(beam::Entry) / 8 in csrc/beam_search.h


@dataclass(frozen=True, eq=False)
class BeamState:
    """The beams of a batch of streams between two chunks (``ctc_beam_search_chunk``).

    Per stream: its K = beam_width entries as the kernels keep them (``beams``,
    opaque), with each entry's prefix length and log-probability (``lengths``,
    ``scores``: (B, K), 0 and -inf for an empty slot), ``progress`` (B, 2) int64 (frames
    decoded, entries in the beam), and the prefix tree that holds the entries' labels
    and timesteps (``nodes`` (B, N, 3) int32, ``nodes_used`` (B,) int64): each
    extension that a kept prefix made in a chunk is one node, however many entries
    share it. The fields are never reassigned, but the trees are appended to in place
    by each chunk decoded from this state (or from a state that shares its trees):
    every such state stays valid, as nodes are only added past ``nodes_used``; do not
    decode from states that share trees in two threads or CUDA streams at once.
    ``classes`` is the chunks' class count (0 before the first chunk). Memory per
    stream: 72 * K bytes for the beam and 12 bytes per tree node; a full tree is
    compacted to the nodes its beam reaches and resized to twice what the next chunk
    then needs (K per frame), so its size follows the beam's prefixes, not the frames
    decoded. A batch's trees share one size, the largest stream's.
    """

    beams: torch.Tensor
    progress: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    nodes: torch.Tensor
    nodes_used: torch.Tensor
    classes: int = 0

    @classmethod
    def start(cls, batch: int, beam_width: int, device: Union[str, torch.device] = "cpu") -> "BeamState":
        """The state of ``batch`` streams that have decoded no frame yet."""
        batch = _check_int_arg(batch, "batch", 0)
        beam_width = _check_int_arg(beam_width, "beam_width", 1, MAX_BEAM_WIDTH)
        return cls(torch.zeros((batch, beam_width, _ENTRY_WORDS), dtype=torch.int64, device=device),
                   torch.zeros((batch, 2), dtype=torch.int64, device=device),
                   torch.zeros((batch, beam_width), dtype=torch.int32, device=device),
                   torch.full((batch, beam_width), -math.inf, device=device),
                   torch.zeros((batch, 0, 3), dtype=torch.int32, device=device),
                   torch.zeros((batch,), dtype=torch.int64, device=device))

    @property
    def batch_size(self) -> int:
        return self.beams.shape[0]

    @property
    def beam_width(self) -> int:
        return self.beams.shape[1]

    @property
    def device(self) -> torch.device:
        return self.beams.device

    @property
    def frames(self) -> torch.Tensor:
        """(B,) int64 frames each stream has decoded."""
        return self.progress[:, 0]

    def result(self, top_paths: int = 1) -> BeamSearchResult:
        """The ``top_paths`` best prefixes so far, read back from the trees: tokens and
        timesteps as wide as the longest of them."""
        top_paths = _check_int_arg(top_paths, "top_paths", 1, self.beam_width)
        lengths, scores = self.lengths[:, :top_paths].clone(), self.scores[:, :top_paths].clone()
        width = int(lengths.max()) if lengths.numel() else 0
        tokens, timesteps = torch.ops.crnn_fast.ctc_beam_state_read.default(
            self.beams, self.progress, self.nodes, self.nodes_used, top_paths, width)
        return BeamSearchResult(tokens, lengths, scores, timesteps)

    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self)[:-1]]

    def to(self, device: Union[str, torch.device]) -> "BeamState":
        if torch.device(device) == self.device:
            return self
        return BeamState(*(t.to(device) for t in self._tensors()), classes=self.classes)

    def rows(self, index: Union[int, slice]) -> "BeamState":
        """The state of one stream or a contiguous range of them (views: their trees
        stay shared)."""
        picked = range(self.batch_size)[index]  # IndexError past the end, as a list's
        if isinstance(picked, int):
            picked = range(picked, picked + 1)
        if picked.step != 1:
            raise ValueError(f"rows takes an index or a slice with step 1, got {index!r}")
        return BeamState(*(t[picked.start:picked.stop] for t in self._tensors()), classes=self.classes)

    @staticmethod
    def cat(states: Sequence["BeamState"]) -> "BeamState":
        """One state of the streams of ``states``, in order (a copy)."""
        if not states or not all(isinstance(s, BeamState) for s in states):
            raise TypeError("states must be a non-empty sequence of BeamState")
        first = states[0]
        if any(s.beam_width != first.beam_width or s.device != first.device for s in states):
            raise ValueError("states must share one beam_width and device")
        classes = {s.classes for s in states} - {0}
        if len(classes) > 1:
            raise ValueError(f"states come from chunks of different class counts: {sorted(classes)}")
        capacity = max(s.nodes.shape[1] for s in states)
        nodes = torch.cat([torch.nn.functional.pad(s.nodes, (0, 0, 0, capacity - s.nodes.shape[1])) for s in states])
        merged = [torch.cat([getattr(s, name) for s in states])
                  for name in ("beams", "progress", "lengths", "scores")]
        return BeamState(*merged, nodes, torch.cat([s.nodes_used for s in states]),
                         classes=classes.pop() if classes else 0)

    def _with_room(self, nodes: int) -> "BeamState":
        """This state with room in every tree for ``nodes`` more. A tree that is full,
        or more than 8 times larger than it needs (after a large chunk), is compacted
        (only the nodes its beams reach, into new tensors) and resized to twice what it
        then needs. On a GPU, two synchronisations when it is, else one."""
        capacity = self.nodes.shape[1]
        needed = int(self.nodes_used.max()) + nodes if self.batch_size else 0
        if nodes == 0 or needed <= capacity <= 8 * needed:
            return self
        beams, tree, used = torch.ops.crnn_fast.ctc_beam_state_compact.default(
            self.beams, self.progress, self.nodes, self.nodes_used)
        size = min(2 * (int(used.max()) + nodes), INT32_MAX)
        tree = torch.nn.functional.pad(tree, (0, 0, 0, size - capacity)) if size > capacity else \
            tree[:, :size].contiguous()
        return replace(self, beams=beams, nodes=tree, nodes_used=used)


def ctc_beam_search_chunk(
    log_probs: torch.Tensor,
    input_lengths: Lengths = None,
    beam_width: int = 10,
    top_paths: int = 1,
    blank: int = 0,
    blank_penalty: float = 0.0,
    cutoff_top_n: Optional[int] = None,
    cutoff_prob: float = 1.0,
    state: Optional[BeamState] = None,
) -> tuple[BeamSearchResult, BeamState]:
    """``ctc_beam_search`` over one chunk of a batch of streams, from their ``state``.

    Decoding a stream chunk by chunk, each call given the state the previous one
    returned (``None`` for the first: streams with no frame yet), gives exactly the
    beams, scores and timesteps of ``ctc_beam_search`` on the whole stream, whatever the
    chunk sizes. ``input_lengths`` are the frames of this chunk per stream (0: the
    stream waits); timesteps count from each stream's first frame. The options are
    those of ``ctc_beam_search``; pass the same ones with every chunk of a stream.

    Returns ``(result, state)``: the ``top_paths`` best prefixes so far as a
    ``BeamSearchResult`` (tokens and timesteps as wide as the longest of them, not T),
    and the state to pass with the next chunk. A chunk costs the decoding of its frames
    plus reading back the ``top_paths`` prefixes; the labels decoded before are held
    once each in a prefix tree (see ``BeamState``), never copied per chunk except when
    the tree is compacted (amortised: each node at most a few times). Results and state
    stay on ``log_probs``' device; a CUDA call synchronises a few times (room in the
    trees, NaN check, width of the result, and lengths given on the GPU).
    """
    batch, frames, classes = _check_log_probs(log_probs)
    beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob = _beam_options(
        classes, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob)
    lengths = _check_lengths(input_lengths, "input_lengths", batch, frames, log_probs.device)
    if state is None:
        state = BeamState.start(batch, beam_width, log_probs.device)
    elif not isinstance(state, BeamState):
        raise TypeError(f"state must be a BeamState (or None to start), got {type(state).__name__}")
    elif state.batch_size != batch:
        raise ValueError(f"state holds {state.batch_size} streams but log_probs has B={batch}")
    elif state.beam_width != beam_width:
        raise ValueError(f"state was decoded with beam_width={state.beam_width}, got beam_width={beam_width}")
    elif state.classes not in (0, classes):
        raise ValueError(f"state was decoded from chunks of C={state.classes} classes, this chunk has C={classes}")
    elif state.device != log_probs.device:
        raise ValueError(f"state is on {state.device} but log_probs is on {log_probs.device}")
    state = state._with_room(beam_width * frames)
    beams, out_lengths, scores, progress = torch.ops.crnn_fast.ctc_beam_search_chunk.default(
        log_probs, lengths, state.beams, state.progress, state.nodes, state.nodes_used, blank, blank_penalty,
        cutoff_top_n, cutoff_prob)
    if batch > 0 and bool(scores.isnan().any()):
        _raise_nan_row(scores, log_probs, lengths)
    new = BeamState(beams, progress, out_lengths, scores, state.nodes, state.nodes_used, classes)
    return new.result(top_paths), new


def _check_tokens(tokens, name: str) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(tokens).__name__}")
    if tokens.dim() != 2:
        raise ValueError(f"{name} must be 2-D (B, T) padded token ids, got shape {tuple(tokens.shape)}")
    if not _is_integer(tokens.dtype):
        raise TypeError(f"{name} must hold integer token ids, got {tokens.dtype}")
    if tokens.device.type not in DEVICE_TYPES:
        raise ValueError(f"{name} must be on a CPU or CUDA device, got {tokens.device}")
    return tokens


def _check_pairs(hyp, hyp_lengths: Lengths, ref, ref_lengths: Lengths):
    """Token tensors in one common int dtype, and their lengths as int64 on their device."""
    hyp, ref = _check_tokens(hyp, "hyp"), _check_tokens(ref, "ref")
    if hyp.device != ref.device:
        raise ValueError(f"hyp and ref must be on the same device, got {hyp.device} and {ref.device}")
    if hyp.shape[0] != ref.shape[0]:
        raise ValueError(f"hyp and ref must have the same batch size, got {hyp.shape[0]} and {ref.shape[0]}")
    # int32 when both fit it, int64 otherwise (small int types widen to int32)
    narrow = (torch.int8, torch.uint8, torch.int16, torch.int32)
    dtype = torch.int32 if hyp.dtype in narrow and ref.dtype in narrow else torch.int64
    batch = hyp.shape[0]
    hyp_lengths = _check_lengths(hyp_lengths, "hyp_lengths", batch, hyp.shape[1], hyp.device)
    ref_lengths = _check_lengths(ref_lengths, "ref_lengths", batch, ref.shape[1], ref.device)
    return hyp.to(dtype), hyp_lengths, ref.to(dtype), ref_lengths


def edit_distance(hyp: torch.Tensor, hyp_lengths: Lengths, ref: torch.Tensor, ref_lengths: Lengths) -> torch.Tensor:
    """Levenshtein distance between each pair of padded token sequences.

    Args:
        hyp: (B, Th) integer token ids (any values: characters, word ids...), CPU or CUDA,
            any strides. Padding after each row's length is ignored.
        hyp_lengths: (B,) lengths in [0, Th] (tensor on any device or sequence of ints);
            ``None`` for full rows.
        ref: (B, Tr) integer token ids on the device of ``hyp``.
        ref_lengths: (B,) lengths in [0, Tr], or ``None``.

    Returns:
        (B,) int32 distances (unit-cost insertions, deletions, substitutions) on the
        device of ``hyp``.

    Bit-parallel (Myers/Hyyrö) in blocks of 64 tokens of the shorter sequence, so any
    length works, in O(ceil(m / 64) * n) word operations per pair. The CPU kernel runs
    the batch over torch's threads; the CUDA kernel decodes the batch in one launch
    (a thread per pair when both widths are <= 64, a warp per pair otherwise).
    """
    hyp, hyp_lengths, ref, ref_lengths = _check_pairs(hyp, hyp_lengths, ref, ref_lengths)
    return torch.ops.crnn_fast.edit_distance.default(hyp, hyp_lengths, ref, ref_lengths)


def _check_fold(fold, device: torch.device) -> torch.Tensor:
    fold = _as_tensor(fold, "fold", "token ids")
    if fold.dim() != 1:
        raise ValueError(f"fold must be 1-D (V,), got shape {tuple(fold.shape)}")
    if not _is_integer(fold.dtype):
        raise TypeError(f"fold must hold integer token ids, got {fold.dtype}")
    return fold.to(device=device, dtype=torch.int64)


def _ratio(num, den) -> float:
    return num / den if den else float("nan")


class SequenceMetrics:
    """Streaming form of :func:`sequence_metrics` for evaluation in batches.

    ``update`` adds a batch's sums into a tensor on the batch's device without
    synchronising; ``compute`` brings the five sums to the host once.
    """

    def __init__(self, fold: Optional[Union[torch.Tensor, Sequence[int]]] = None):
        self._fold = fold
        self._folds = {}  # the fold map, moved once per device
        self._totals = None
        self.count = 0

    def update(self, hyp, hyp_lengths: Lengths, ref, ref_lengths: Lengths) -> torch.Tensor:
        """Adds a batch; returns its (B,) int32 distances (on the device of ``hyp``)."""
        hyp, hyp_lengths, ref, ref_lengths = _check_pairs(hyp, hyp_lengths, ref, ref_lengths)
        fold = None
        if self._fold is not None:
            if hyp.device not in self._folds:
                self._folds[hyp.device] = _check_fold(self._fold, hyp.device)
            fold = self._folds[hyp.device]
        distances, totals = torch.ops.crnn_fast.sequence_metrics.default(hyp, hyp_lengths, ref, ref_lengths, fold)
        self._totals = totals if self._totals is None else self._totals + totals.to(self._totals.device)
        self.count += hyp.shape[0]
        return distances

    def all_reduce(self) -> "SequenceMetrics":
        """Sums the totals and the count over the ranks of the default ``torch.distributed``
        process group, so that ``compute`` gives the metrics of the whole sharded data set
        (sums, not averages of averages: exactly the single-process numbers). Every rank
        must call it; without a process group it does nothing. Returns ``self``."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        sums = torch.zeros(6, dtype=torch.int64, device=device)
        if self._totals is not None:
            sums[:5] = self._totals.to(sums.device)
        sums[5] = self.count
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        self._totals, self.count = sums[:5], int(sums[5])
        return self

    def compute(self) -> dict:
        """The metrics over every batch so far, as Python floats (see :func:`sequence_metrics`)."""
        exact, exact_folded, matches, edits, ref_tokens = self._totals.tolist() if self._totals is not None else [0] * 5
        result = {
            "exact": _ratio(exact, self.count),
            "char_acc": _ratio(matches, ref_tokens),
            "cer": _ratio(edits, ref_tokens),
            "mean_edit": _ratio(edits, self.count),
            "count": self.count,
        }
        if self._fold is not None:
            result["exact_folded"] = _ratio(exact_folded, self.count)
        return result


def sequence_metrics(
    hyp: torch.Tensor,
    hyp_lengths: Lengths,
    ref: torch.Tensor,
    ref_lengths: Lengths,
    fold: Optional[Union[torch.Tensor, Sequence[int]]] = None,
    return_distances: bool = False,
) -> dict:
    """Exact match, character accuracy, CER and mean edit distance of a batch, fused.

    One pass on the device of ``hyp`` computes every pair's edit distance and reduces
    the sums there; only five integers cross to the host.

    Args:
        hyp, hyp_lengths, ref, ref_lengths: as for :func:`edit_distance`.
        fold: optional (V,) map from token id to a folded token id (e.g. lowercase),
            tensor or sequence of ints; ids outside [0, V) fold to themselves. When
            given, ``exact_folded`` (case-insensitive exact match) is reported too.
        return_distances: also return the (B,) int32 distances under ``"distances"``.

    Returns:
        dict of Python floats: ``exact`` (share of rows equal to their reference),
        ``char_acc`` (position-wise: tokens equal at the same index, over all reference
        tokens), ``cer`` (edits over all reference tokens), ``mean_edit`` (mean distance),
        ``exact_folded`` with ``fold``, and ``count`` (B). Ratios over an empty batch or
        over zero reference tokens are NaN.
    """
    if not isinstance(return_distances, bool):
        raise TypeError(f"return_distances must be a bool, got {type(return_distances).__name__}")
    metrics = SequenceMetrics(fold)
    distances = metrics.update(hyp, hyp_lengths, ref, ref_lengths)
    result = metrics.compute()
    if return_distances:
        result["distances"] = distances
    return result


@torch.library.register_fake("crnn_fast::ctc_beam_search")
def _ctc_beam_search_fake(log_probs, input_lengths, beam_width, top_paths, blank, blank_penalty, cutoff_top_n,
                          cutoff_prob):
    batch, frames = log_probs.shape[0], log_probs.shape[1]
    return (
        log_probs.new_empty((batch, top_paths, frames), dtype=torch.int32),
        log_probs.new_empty((batch, top_paths), dtype=torch.int32),
        log_probs.new_empty((batch, top_paths), dtype=torch.float32),
        log_probs.new_empty((batch, top_paths, frames), dtype=torch.int32),
    )


@torch.library.register_fake("crnn_fast::ctc_beam_search_chunk")
def _ctc_beam_search_chunk_fake(log_probs, input_lengths, beams, progress, nodes, nodes_used, blank, blank_penalty,
                                cutoff_top_n, cutoff_prob):
    batch, beam_width = beams.shape[0], beams.shape[1]
    return (beams.new_empty(beams.shape), progress.new_empty((batch, beam_width), dtype=torch.int32),
            log_probs.new_empty((batch, beam_width), dtype=torch.float32), progress.new_empty(progress.shape))


@torch.library.register_fake("crnn_fast::ctc_beam_state_read")
def _ctc_beam_state_read_fake(beams, progress, nodes, nodes_used, top_paths, width):
    shape = (beams.shape[0], top_paths, width)
    return nodes.new_empty(shape), nodes.new_empty(shape)


@torch.library.register_fake("crnn_fast::ctc_beam_state_compact")
def _ctc_beam_state_compact_fake(beams, progress, nodes, nodes_used):
    return beams.new_empty(beams.shape), nodes.new_empty(nodes.shape), nodes_used.new_empty(nodes_used.shape)


@torch.library.register_fake("crnn_fast::edit_distance")
def _edit_distance_fake(hyp, hyp_lengths, ref, ref_lengths):
    return hyp.new_empty((hyp.shape[0],), dtype=torch.int32)


@torch.library.register_fake("crnn_fast::sequence_metrics")
def _sequence_metrics_fake(hyp, hyp_lengths, ref, ref_lengths, fold):
    return hyp.new_empty((hyp.shape[0],), dtype=torch.int32), hyp.new_empty((5,), dtype=torch.int64)
