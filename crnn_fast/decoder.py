"""``CTCBeamDecoder`` and ``OnlineCTCBeamDecoder``: drop-ins for parlance's ctcdecode,
running on crnn_fast's batched beam-search kernels (CPU threads or CUDA).

    # from ctcdecode import CTCBeamDecoder
    from crnn_fast import CTCBeamDecoder

    decoder = CTCBeamDecoder(labels, beam_width=100, num_processes=4, blank_id=0, log_probs_input=False)
    beam_results, beam_scores, timesteps, out_lens = decoder.decode(probs, seq_lens)
    best = beam_results[0][0][: out_lens[0][0]]

Outputs follow ctcdecode: ``beam_results`` (B, beam_width, T) int32, ``beam_scores``
(B, beam_width) float32 holding the negative log-probability of each beam (so
``p = 1 / exp(score)``), ``timesteps`` (B, beam_width, T) int32 and ``out_lens``
(B, beam_width) int32. Beams that do not exist (fewer distinct prefixes than
beam_width) have length 0 and score inf. Results are on the input's device.

Streaming, as ctcdecode's online decoder (one ``DecoderState`` per stream; a batch may
mix streams at any point of their decoding):

    # from ctcdecode import OnlineCTCBeamDecoder, DecoderState
    from crnn_fast import OnlineCTCBeamDecoder, DecoderState

    decoder = OnlineCTCBeamDecoder(labels, beam_width=100, log_probs_input=True)
    states = [DecoderState(decoder) for _ in range(batch)]
    for chunk, last in chunks:  # chunk: (batch, frames, classes)
        beam_results, beam_scores, timesteps, out_lens = decoder.decode(chunk, states, [last] * batch)

Each call returns the beams of every stream so far (width: the longest prefix), with
timesteps counted from the stream's first frame: exactly what ``CTCBeamDecoder`` gives
on the whole stream.
"""

import threading
from collections.abc import Sequence
from typing import Optional

import torch

from .ops import BeamState, ctc_beam_search, ctc_beam_search_chunk

_threads_lock = threading.Lock()


class _BeamDecoder:
    """ctcdecode's constructor and its checks, shared by the offline and online decoders."""

    def __init__(
        self,
        labels: Sequence[str],
        model_path: Optional[str] = None,
        alpha: float = 0,
        beta: float = 0,
        cutoff_top_n: int = 40,
        cutoff_prob: float = 1.0,
        beam_width: int = 100,
        num_processes: int = 4,
        blank_id: int = 0,
        log_probs_input: bool = False,
    ):
        if model_path is not None:
            raise ValueError(
                "model_path: KenLM language models are not supported by crnn_fast's CTCBeamDecoder; "
                "decode without one (model_path=None), or rescore its beams with your language model"
            )
        if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) == 0:
            raise TypeError("labels must be a non-empty sequence of strings, one per class (the blank included)")
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise ValueError(f"num_processes must be an int >= 1, got {num_processes!r}")
        if not 0 <= blank_id < len(labels):
            raise ValueError(f"blank_id must be in [0, len(labels)) = [0, {len(labels)}), got {blank_id}")
        self._labels = list(labels)
        self._cutoff_top_n = cutoff_top_n
        self._cutoff_prob = cutoff_prob
        self._beam_width = beam_width
        self._num_processes = num_processes
        self._blank_id = blank_id
        self._log_probs_input = bool(log_probs_input)
        # alpha and beta weigh a language model; ctcdecode ignores them without one, and so do these classes.
        self._alpha, self._beta = alpha, beta

    def _search(self, search, probs: torch.Tensor, seq_lens, **kwargs):
        """Runs ``search`` (ctc_beam_search or its chunked form) on ``probs`` with this
        decoder's options, on num_processes CPU threads."""
        self._check_probs(probs)
        log_probs = probs if self._log_probs_input else torch.log(probs.float().clamp_min(torch.finfo(torch.float32).tiny))
        with _threads_lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(self._num_processes if log_probs.device.type == "cpu" else threads)
            try:
                return search(
                    log_probs,
                    seq_lens,
                    beam_width=self._beam_width,
                    top_paths=self._beam_width,
                    blank=self._blank_id,
                    cutoff_top_n=min(self._cutoff_top_n, probs.shape[2]),
                    cutoff_prob=self._cutoff_prob,
                    **kwargs,
                )
            finally:
                torch.set_num_threads(threads)

    def _check_probs(self, probs) -> int:
        """Returns the batch size of ``probs``, a (B, T, len(labels)) tensor."""
        if not isinstance(probs, torch.Tensor) or probs.dim() != 3:
            raise ValueError("probs must be a 3-D (batch, time, classes) tensor")
        if probs.shape[2] != len(self._labels):
            raise ValueError(f"probs has {probs.shape[2]} classes but labels has {len(self._labels)}")
        return probs.shape[0]

    def reset_params(self, alpha: float, beta: float) -> None:
        """ctcdecode's language-model weights; kept for compatibility, unused without a model."""
        self._alpha, self._beta = alpha, beta


class CTCBeamDecoder(_BeamDecoder):
    """ctcdecode's ``CTCBeamDecoder`` interface without a language model."""

    def decode(self, probs: torch.Tensor, seq_lens: Optional[torch.Tensor] = None):
        """Beam-search a (B, T, C) batch of probabilities (or log-probs with
        ``log_probs_input=True``); ``seq_lens`` (B,) frames per row, default T."""
        result = self._search(ctc_beam_search, probs, seq_lens)
        return result.tokens, -result.scores, result.timesteps, result.lengths


class OnlineCTCBeamDecoder(_BeamDecoder):
    """ctcdecode's ``OnlineCTCBeamDecoder`` interface without a language model: the same
    constructor as ``CTCBeamDecoder``, and ``decode`` over chunks of streams."""

    def decode(self, probs: torch.Tensor, states: Sequence["DecoderState"], is_eos_s: Sequence[bool],
               seq_lens: Optional[torch.Tensor] = None):
        """Decodes the next chunk of each stream: ``probs`` (B, T, C) as in
        ``CTCBeamDecoder.decode``, ``states`` one ``DecoderState`` of this decoder per row,
        ``is_eos_s`` per row whether this is its stream's last chunk (its state cannot be
        used again), ``seq_lens`` (B,) frames of the chunk per row, default T.

        Returns (beam_results, beam_scores, timesteps, out_lens) of each stream so far,
        as ``CTCBeamDecoder.decode`` would on the frames decoded up to now; beam_results
        and timesteps are as wide as the longest prefix. (ctcdecode fills them only at
        the end of a stream; reading every beam back each chunk costs beam_width times
        the longest prefix per stream.)"""
        batch = self._check_probs(probs)
        if hasattr(is_eos_s, "tolist"):  # a tensor or numpy array
            is_eos_s = is_eos_s.tolist()
        if isinstance(states, DecoderState) or not isinstance(states, Sequence) or len(states) != batch:
            raise ValueError(f"states must be a sequence of one DecoderState per row of probs ({batch})")
        if isinstance(is_eos_s, (str, bool)) or not isinstance(is_eos_s, Sequence) or len(is_eos_s) != batch:
            raise ValueError(f"is_eos_s must be a sequence of one bool per row of probs ({batch})")
        for i, state in enumerate(states):
            if not isinstance(state, DecoderState):
                raise TypeError(f"states[{i}] must be a DecoderState, got {type(state).__name__}")
            if state._decoder is not self:
                raise ValueError(f"states[{i}] belongs to another decoder: make it with DecoderState(this decoder)")
            if state._finished:
                raise ValueError(f"states[{i}] has reached its end of stream (is_eos); start a new DecoderState")
        if len({id(state) for state in states}) != batch:
            raise ValueError("states must be distinct: one stream per row")
        result, joined = self._search(ctc_beam_search_chunk, probs, seq_lens, state=self._join(states, probs.device))
        for i, (state, eos) in enumerate(zip(states, is_eos_s)):
            state._batch, state._row = joined, i
            state._finished = bool(eos)
        return result.tokens, -result.scores, result.timesteps, result.lengths

    def _join(self, states: Sequence["DecoderState"], device: torch.device) -> Optional[BeamState]:
        """The batch state of ``states``: as it is when they are the rows of the last call's
        batch in order (decoding a fixed batch of streams copies nothing), else gathered."""
        if not states:
            return None
        last = states[0]._batch
        if last is not None and last.batch_size == len(states) and all(
                s._batch is last and s._row == i for i, s in enumerate(states)):
            return last.to(device)
        return BeamState.cat([BeamState.start(1, self._beam_width, device) if s._batch is None
                              else s._batch.rows(s._row).to(device) for s in states])


class DecoderState:
    """One stream's beams between the chunks that ``OnlineCTCBeamDecoder.decode`` decodes,
    as in ctcdecode: a row of a ``BeamState`` (72 * beam_width bytes and a prefix tree
    of 12 bytes per node)."""

    def __init__(self, decoder: OnlineCTCBeamDecoder):
        if not isinstance(decoder, OnlineCTCBeamDecoder):
            raise TypeError(f"decoder must be an OnlineCTCBeamDecoder, got {type(decoder).__name__}")
        self._decoder = decoder
        self._batch: Optional[BeamState] = None  # the state of the last batch it was decoded in (None: none yet)
        self._row = 0  # its row there
        self._finished = False
