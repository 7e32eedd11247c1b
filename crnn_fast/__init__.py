"""crnn_fast: CRNN + CTC text reading with fast batched C++/CUDA decoders and metrics."""

from . import _extension  # noqa: F401  (loads the kernels before the wrappers use them)
from .ops import GreedyDecodeResult, ctc_greedy_decode, edit_distance, sequence_metrics
from .version import __version__

__all__ = ["GreedyDecodeResult", "__version__", "ctc_greedy_decode", "edit_distance", "sequence_metrics"]
