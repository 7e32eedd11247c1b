"""crnn_fast: CRNN + CTC text reading with fast batched C++/CUDA decoders and metrics."""

from . import _extension  # noqa: F401  (loads the kernels before the wrappers use them)
from .checkpoint import load_model
from .decoder import CTCBeamDecoder, DecoderState, OnlineCTCBeamDecoder
from .ops import (
    BeamSearchResult,
    BeamState,
    GreedyDecodeResult,
    SequenceMetrics,
    ctc_beam_search,
    ctc_beam_search_chunk,
    ctc_greedy_decode,
    edit_distance,
    sequence_metrics,
)
from .version import __version__

__all__ = [
    "BeamSearchResult",
    "BeamState",
    "CTCBeamDecoder",
    "DecoderState",
    "GreedyDecodeResult",
    "OnlineCTCBeamDecoder",
    "SequenceMetrics",
    "__version__",
    "ctc_beam_search",
    "ctc_beam_search_chunk",
    "ctc_greedy_decode",
    "edit_distance",
    "load_model",
    "sequence_metrics",
]
