// Host-side setup of ctc_beam_search shared by the CPU and CUDA entry points.
#pragma once

#include "beam_search.h"
#include "common.h"

namespace crnn_fast {

struct BeamOutputs {
  Tensor tokens, lengths, scores, timesteps;
};

// Checks the arguments and allocates the outputs on log_probs' device.
inline BeamOutputs prepare_beam_search(const Tensor& log_probs, const Tensor& input_lengths, int64_t beam_width,
                                       int64_t top_paths, int64_t blank, int64_t cutoff_top_n, double cutoff_prob) {
  check_log_probs(log_probs);
  check_lengths(input_lengths, log_probs, "input_lengths");
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  STD_TORCH_CHECK(beam_width >= 1 && beam_width <= beam::kMaxBeamWidth, "beam_width must be in [1, ",
                  beam::kMaxBeamWidth, "], got ", beam_width);
  check_beam_args(C, beam_width, top_paths, blank, cutoff_top_n, cutoff_prob);
  STD_TORCH_CHECK(beam::Layout(beam_width, T, C).bytes() <= beam::kMaxWorkspaceBytes,
                  "beam_width * T is too large: one sequence would need more than 1 GiB of beam history");
  const auto device = log_probs.device();
  return {torch::stable::empty({B, top_paths, T}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, top_paths}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, top_paths}, ScalarType::Float, std::nullopt, device),
          torch::stable::empty({B, top_paths, T}, ScalarType::Int, std::nullopt, device)};
}

inline beam::Params beam_params(int64_t classes, int64_t beam_width, int64_t top_paths, int64_t blank,
                                double blank_penalty, int64_t cutoff_top_n, double cutoff_prob) {
  return {beam_width,
          top_paths,
          blank,
          std::min(cutoff_top_n, classes),
          static_cast<float>(blank_penalty),
          static_cast<float>(cutoff_prob),
          cutoff_top_n < classes || cutoff_prob < 1.0};
}

}  // namespace crnn_fast
