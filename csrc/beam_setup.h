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

// A batch of streams' beams and trees (see beam_search.h): beams (B, K, kEntryWords)
// int64, progress (B, 2) int64, nodes (B, N, 3) int32, nodes_used (B,) int64, all on
// one device. The beams are made contiguous; the trees, which the ops write in place,
// must be.
struct StateShape {
  int64_t B, K, N;
};

inline StateShape check_beam_state(Tensor& beams, Tensor& progress, const Tensor& nodes, const Tensor& nodes_used) {
  STD_TORCH_CHECK(beams.dim() == 3 && beams.size(2) == beam::kEntryWords && beams.scalar_type() == ScalarType::Long,
                  "state beams must be an int64 (B, beam_width, ", beam::kEntryWords, ") tensor");
  const int64_t B = beams.size(0), K = beams.size(1);
  const auto device = beams.device();
  STD_TORCH_CHECK(K >= 1 && K <= beam::kMaxBeamWidth, "beam_width must be in [1, ", beam::kMaxBeamWidth, "], got ", K);
  STD_TORCH_CHECK(progress.dim() == 2 && progress.size(0) == B && progress.size(1) == 2 &&
                      progress.scalar_type() == ScalarType::Long && progress.device() == device,
                  "state progress must be an int64 (B, 2) tensor on the device of beams");
  STD_TORCH_CHECK(nodes.dim() == 3 && nodes.size(0) == B && nodes.size(2) == 3 &&
                      nodes.scalar_type() == ScalarType::Int && nodes.device() == device && nodes.is_contiguous(),
                  "state nodes must be a contiguous int32 (B, N, 3) tensor on the device of beams");
  STD_TORCH_CHECK(nodes.size(1) <= std::numeric_limits<int32_t>::max(), "state nodes: more than 2**31 - 1 per stream");
  STD_TORCH_CHECK(nodes_used.dim() == 1 && nodes_used.size(0) == B && nodes_used.scalar_type() == ScalarType::Long &&
                      nodes_used.device() == device && nodes_used.is_contiguous(),
                  "state nodes_used must be a contiguous int64 (B,) tensor on the device of beams");
  beams = torch::stable::contiguous(beams);
  progress = torch::stable::contiguous(progress);
  return {B, K, nodes.size(1)};
}

inline beam::Tree tree_of(const Tensor& nodes, const Tensor& nodes_used) {
  return {static_cast<beam::Node*>(nodes.mutable_data_ptr()), static_cast<int64_t*>(nodes_used.mutable_data_ptr()),
          nodes.size(1)};
}

inline beam::StreamIn beams_of(const Tensor& beams, const Tensor& progress) {
  return {static_cast<const beam::Entry*>(beams.const_data_ptr()),
          static_cast<const int64_t*>(progress.const_data_ptr())};
}

// The beams a chunk leaves: beams, lengths (B, K) int32, scores (B, K) float32, progress.
struct ChunkOutputs {
  Tensor beams, lengths, scores, progress;
  beam::StreamOut rows() const {
    return {{static_cast<beam::Entry*>(beams.mutable_data_ptr()), static_cast<int64_t*>(progress.mutable_data_ptr())},
            static_cast<int32_t*>(lengths.mutable_data_ptr()),
            static_cast<float*>(scores.mutable_data_ptr())};
  }
};

// Checks a chunk and its state, and allocates the beams it leaves.
inline ChunkOutputs prepare_beam_chunk(const Tensor& log_probs, const Tensor& input_lengths, Tensor& beams,
                                       Tensor& progress, const Tensor& nodes, const Tensor& nodes_used, int64_t blank,
                                       int64_t cutoff_top_n, double cutoff_prob) {
  check_log_probs(log_probs);
  check_lengths(input_lengths, log_probs, "input_lengths");
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  const int64_t K = check_beam_state(beams, progress, nodes, nodes_used).K;
  STD_TORCH_CHECK(beams.size(0) == B && beams.device() == log_probs.device(),
                  "the state must hold B streams on log_probs' device");
  const auto device = log_probs.device();
  check_beam_args(C, K, 1, blank, cutoff_top_n, cutoff_prob);
  STD_TORCH_CHECK(beam::Layout(K, T, C).bytes() <= beam::kMaxWorkspaceBytes,
                  "beam_width * T is too large: one chunk would need more than 1 GiB of beam history");
  return {torch::stable::empty({B, K, beam::kEntryWords}, ScalarType::Long, std::nullopt, device),
          torch::stable::empty({B, K}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, K}, ScalarType::Float, std::nullopt, device),
          torch::stable::empty({B, 2}, ScalarType::Long, std::nullopt, device)};
}

// The outputs of ctc_beam_state_read: (B, top_paths, width) int32 tokens and timesteps.
inline std::tuple<Tensor, Tensor> prepare_beam_read(const StateShape& shape, int64_t top_paths, int64_t width,
                                                    const Tensor& beams) {
  STD_TORCH_CHECK(top_paths >= 1 && top_paths <= shape.K, "top_paths must be in [1, beam_width], got ", top_paths);
  STD_TORCH_CHECK(width >= 0, "width must be >= 0, got ", width);
  const auto device = beams.device();
  return {torch::stable::empty({shape.B, top_paths, width}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({shape.B, top_paths, width}, ScalarType::Int, std::nullopt, device)};
}

// The outputs of ctc_beam_state_compact: beams, nodes and nodes_used like the inputs.
inline std::tuple<Tensor, Tensor, Tensor> prepare_beam_compact(const StateShape& shape, const Tensor& beams) {
  const auto device = beams.device();
  return {torch::stable::empty({shape.B, shape.K, beam::kEntryWords}, ScalarType::Long, std::nullopt, device),
          torch::stable::empty({shape.B, shape.N, 3}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({shape.B}, ScalarType::Long, std::nullopt, device)};
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
