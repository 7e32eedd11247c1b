// The schema of every crnn_fast op, declared once. Kernels register themselves
// per backend in csrc/cpu/<op>.cpp and csrc/cuda/<op>.cu.
#include <Python.h>

#include "common.h"

STABLE_TORCH_LIBRARY(crnn_fast, m) {
  m.def("ctc_greedy_decode(Tensor log_probs, Tensor input_lengths, int blank) -> (Tensor, Tensor)");
  // Returns (tokens (B, K, T) int32, lengths (B, K) int32, scores (B, K) float32,
  // timesteps (B, K, T) int32), K = top_paths.
  m.def(
      "ctc_beam_search(Tensor log_probs, Tensor input_lengths, int beam_width, int top_paths, int blank, "
      "float blank_penalty, int cutoff_top_n, float cutoff_prob) -> (Tensor, Tensor, Tensor, Tensor)");
  // Streaming (see csrc/beam_search.h): one chunk of a batch of streams, from their
  // beams (B, K, 8) int64 and progress (B, 2) int64 (zeros before the first chunk),
  // adding to their prefix trees in place: nodes (B, N, 3) int32, nodes_used (B,) int64.
  // Returns the next beams, their lengths (B, K) int32 and scores (B, K) float32, and
  // progress.
  m.def(
      "ctc_beam_search_chunk(Tensor log_probs, Tensor input_lengths, Tensor beams, Tensor progress, "
      "Tensor(a!) nodes, Tensor(b!) nodes_used, int blank, float blank_penalty, int cutoff_top_n, "
      "float cutoff_prob) -> (Tensor, Tensor, Tensor, Tensor)");
  // The top_paths best prefixes of a state: tokens and timesteps (B, top_paths, width) int32.
  m.def(
      "ctc_beam_state_read(Tensor beams, Tensor progress, Tensor nodes, Tensor nodes_used, int top_paths, "
      "int width) -> (Tensor, Tensor)");
  // The state with only the tree nodes its beams reach: (beams, nodes, nodes_used).
  m.def(
      "ctc_beam_state_compact(Tensor beams, Tensor progress, Tensor nodes, Tensor nodes_used) "
      "-> (Tensor, Tensor, Tensor)");
  m.def("edit_distance(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths) -> Tensor");
  // Returns (distances (B,) int32, totals (5,) int64: exact, exact after folding,
  // position-wise matches, edits, reference tokens).
  m.def(
      "sequence_metrics(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths, Tensor? fold) "
      "-> (Tensor, Tensor)");
}

// `import crnn_fast._C` loads this library, whose static initialisers register the
// ops with the dispatcher; the module itself exposes nothing.
extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
