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

// The state tensors of ctc_beam_search_chunk: beams (B, K, kEntryWords) int64,
// tokens and timesteps (B, K, W) int32, progress (B, 2) int64, on log_probs' device.
struct StreamTensors {
  Tensor beams, tokens, timesteps, progress;
};

// The new state, with each entry's prefix length (B, K) int32 and score (B, K) float32.
struct StreamOutputs {
  Tensor beams, tokens, timesteps, lengths, scores, progress;
};

inline beam::StreamIn stream_in(const StreamTensors& s) {
  return {static_cast<const beam::Entry*>(s.beams.const_data_ptr()),
          static_cast<const int32_t*>(s.tokens.const_data_ptr()),
          static_cast<const int32_t*>(s.timesteps.const_data_ptr()), s.tokens.size(2), s.tokens.stride(1),
          static_cast<const int64_t*>(s.progress.const_data_ptr())};
}

inline beam::StreamOut stream_out(const StreamOutputs& s) {
  return {{static_cast<beam::Entry*>(s.beams.mutable_data_ptr()), static_cast<int32_t*>(s.tokens.mutable_data_ptr()),
           static_cast<int32_t*>(s.timesteps.mutable_data_ptr()), s.tokens.size(2), s.tokens.stride(1),
           static_cast<int64_t*>(s.progress.mutable_data_ptr())},
          static_cast<int32_t*>(s.lengths.mutable_data_ptr()),
          static_cast<float*>(s.scores.mutable_data_ptr())};
}

// Checks a chunk and its state (made contiguous in place), and allocates the next
// state: rows T wider than the state's, enough for a label per frame.
inline StreamOutputs prepare_beam_chunk(const Tensor& log_probs, const Tensor& input_lengths, StreamTensors& state,
                                        int64_t blank, int64_t cutoff_top_n, double cutoff_prob) {
  check_log_probs(log_probs);
  check_lengths(input_lengths, log_probs, "input_lengths");
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  const auto device = log_probs.device();
  const Tensor& beams = state.beams;
  STD_TORCH_CHECK(beams.dim() == 3 && beams.size(0) == B && beams.size(2) == beam::kEntryWords &&
                      beams.scalar_type() == ScalarType::Long && beams.device() == device,
                  "state beams must be an int64 (B, beam_width, ", beam::kEntryWords, ") tensor on log_probs' device");
  const int64_t K = beams.size(1);
  STD_TORCH_CHECK(K >= 1 && K <= beam::kMaxBeamWidth, "beam_width must be in [1, ", beam::kMaxBeamWidth, "], got ", K);
  for (const Tensor* rows : {&state.tokens, &state.timesteps}) {
    STD_TORCH_CHECK(rows->dim() == 3 && rows->size(0) == B && rows->size(1) == K &&
                        rows->scalar_type() == ScalarType::Int && rows->device() == device,
                    "state tokens and timesteps must be int32 (B, beam_width, W) tensors on log_probs' device");
  }
  STD_TORCH_CHECK(state.tokens.size(2) == state.timesteps.size(2), "state tokens and timesteps must have one width");
  STD_TORCH_CHECK(state.progress.dim() == 2 && state.progress.size(0) == B && state.progress.size(1) == 2 &&
                      state.progress.scalar_type() == ScalarType::Long && state.progress.device() == device,
                  "state progress must be an int64 (B, 2) tensor on log_probs' device");
  check_beam_args(C, K, 1, blank, cutoff_top_n, cutoff_prob);
  STD_TORCH_CHECK(beam::Layout(K, T, C).bytes() <= beam::kMaxWorkspaceBytes,
                  "beam_width * T is too large: one chunk would need more than 1 GiB of beam history");
  // Rows may be a narrower view of contiguous ones (the wrapper trims them to the
  // longest prefix): then they are read in place.
  state.beams = torch::stable::contiguous(state.beams);
  state.progress = torch::stable::contiguous(state.progress);
  const auto row_view = [&](const Tensor& rows) {
    return rows.stride(2) == 1 && rows.stride(1) >= rows.size(2) && rows.stride(0) == K * rows.stride(1) &&
           rows.stride(1) == state.tokens.stride(1);
  };
  if (!row_view(state.tokens) || !row_view(state.timesteps)) {
    state.tokens = torch::stable::contiguous(state.tokens);
    state.timesteps = torch::stable::contiguous(state.timesteps);
  }
  const int64_t W = state.tokens.size(2) + T;
  return {torch::stable::empty({B, K, beam::kEntryWords}, ScalarType::Long, std::nullopt, device),
          torch::stable::empty({B, K, W}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, K, W}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, K}, ScalarType::Int, std::nullopt, device),
          torch::stable::empty({B, K}, ScalarType::Float, std::nullopt, device),
          torch::stable::empty({B, 2}, ScalarType::Long, std::nullopt, device)};
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
