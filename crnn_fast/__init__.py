"""crnn_fast: CRNN + CTC text reading with fast batched C++/CUDA decoders and metrics."""

from . import _extension  # noqa: F401  (loads the kernels before the wrappers use them)
from .checkpoint import load_model
from .decoder import CTCBeamDecoder
from .ops import (
    BeamSearchResult,
    GreedyDecodeResult,
    SequenceMetrics,
    ctc_beam_search,
    ctc_greedy_decode,
    edit_distance,
    sequence_metrics,
)
from .version import __version__

__all__ = [
    "BeamSearchResult",
    "CTCBeamDecoder",
    "GreedyDecodeResult",
    "SequenceMetrics",
    "__version__",
    "ctc_beam_search",
    "ctc_greedy_decode",
    "edit_distance",
    "load_model",
    "sequence_metrics",
]
