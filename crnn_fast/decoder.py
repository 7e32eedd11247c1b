"""``CTCBeamDecoder``: a drop-in for parlance's ctcdecode, running on crnn_fast's batched
beam-search kernels (CPU threads or CUDA).

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
"""

import threading
from collections.abc import Sequence
from typing import Optional

import torch

from .ops import ctc_beam_search

_threads_lock = threading.Lock()


class CTCBeamDecoder:
    """ctcdecode's ``CTCBeamDecoder`` interface without a language model."""

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
        # alpha and beta weigh a language model; ctcdecode ignores them without one, and so does this class.
        self._alpha, self._beta = alpha, beta

    def decode(self, probs: torch.Tensor, seq_lens: Optional[torch.Tensor] = None):
        """Beam-search a (B, T, C) batch of probabilities (or log-probs with
        ``log_probs_input=True``); ``seq_lens`` (B,) frames per row, default T."""
        if not isinstance(probs, torch.Tensor) or probs.dim() != 3:
            raise ValueError("probs must be a 3-D (batch, time, classes) tensor")
        if probs.shape[2] != len(self._labels):
            raise ValueError(f"probs has {probs.shape[2]} classes but labels has {len(self._labels)}")
        log_probs = probs if self._log_probs_input else torch.log(probs.float().clamp_min(torch.finfo(torch.float32).tiny))
        cutoff_top_n = min(self._cutoff_top_n, probs.shape[2])
        with _threads_lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(self._num_processes if log_probs.device.type == "cpu" else threads)
            try:
                result = ctc_beam_search(
                    log_probs,
                    seq_lens,
                    beam_width=self._beam_width,
                    top_paths=self._beam_width,
                    blank=self._blank_id,
                    cutoff_top_n=cutoff_top_n,
                    cutoff_prob=self._cutoff_prob,
                )
            finally:
                torch.set_num_threads(threads)
        return result.tokens, -result.scores, result.timesteps, result.lengths

    def reset_params(self, alpha: float, beta: float) -> None:
        """ctcdecode's language-model weights; kept for compatibility, unused without a model."""
        self._alpha, self._beta = alpha, beta
