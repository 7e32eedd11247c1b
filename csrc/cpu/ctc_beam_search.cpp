// CTC prefix beam search on the CPU, of whole sequences and of a chunk of streams:
// sequences spread over torch's threads, each thread reusing one workspace for all
// its sequences.
#include <vector>

#include "beam_setup.h"

namespace crnn_fast {
namespace {

std::tuple<Tensor, Tensor, Tensor, Tensor> ctc_beam_search(Tensor log_probs, Tensor input_lengths, int64_t beam_width,
                                                           int64_t top_paths, int64_t blank, double blank_penalty,
                                                           int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cpu(), "log_probs must be a CPU tensor for the CPU kernel");
  BeamOutputs out = prepare_beam_search(log_probs, input_lengths, beam_width, top_paths, blank, cutoff_top_n,
                                        cutoff_prob);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  input_lengths = torch::stable::contiguous(input_lengths);
  const int64_t* lengths = checked_cpu_lengths(input_lengths, T, "input_lengths");
  const beam::Params params = beam_params(C, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(beam_width, T, C);
  auto* tokens = static_cast<int32_t*>(out.tokens.mutable_data_ptr());
  auto* out_lengths = static_cast<int32_t*>(out.lengths.mutable_data_ptr());
  auto* scores = static_cast<float*>(out.scores.mutable_data_ptr());
  auto* timesteps = static_cast<int32_t*>(out.timesteps.mutable_data_ptr());

  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    const auto* data = static_cast<const scalar_t*>(log_probs.const_data_ptr());
    torch::stable::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<uint64_t> buffer((layout.bytes() + 7) / 8);  // 8-byte aligned
      beam::Decoder<scalar_t> decoder(layout, reinterpret_cast<unsigned char*>(buffer.data()));
      for (int64_t b = begin; b < end; ++b) {
        decoder.run(data + b * log_probs.stride(0), log_probs.stride(1), log_probs.stride(2), lengths[b], params,
                    tokens + b * top_paths * T, out_lengths + b * top_paths, scores + b * top_paths,
                    timesteps + b * top_paths * T);
      }
    });
  });
  return {out.tokens, out.lengths, out.scores, out.timesteps};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> ctc_beam_search_chunk(
    Tensor log_probs, Tensor input_lengths, Tensor beams, Tensor tokens, Tensor timesteps, Tensor progress,
    int64_t blank, double blank_penalty, int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cpu(), "log_probs must be a CPU tensor for the CPU kernel");
  StreamTensors state{beams, tokens, timesteps, progress};
  const StreamOutputs out = prepare_beam_chunk(log_probs, input_lengths, state, blank, cutoff_top_n, cutoff_prob);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2), K = beams.size(1);
  input_lengths = torch::stable::contiguous(input_lengths);
  const int64_t* lengths = checked_cpu_lengths(input_lengths, T, "input_lengths");
  const beam::Params params = beam_params(C, K, 1, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(K, T, C);
  const beam::StreamIn in = stream_in(state);
  const beam::StreamOut next = stream_out(out);

  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    const auto* data = static_cast<const scalar_t*>(log_probs.const_data_ptr());
    torch::stable::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      std::vector<uint64_t> buffer((layout.bytes() + 7) / 8);  // 8-byte aligned
      beam::Decoder<scalar_t> decoder(layout, reinterpret_cast<unsigned char*>(buffer.data()));
      for (int64_t b = begin; b < end; ++b) {
        decoder.run_chunk(data + b * log_probs.stride(0), log_probs.stride(1), log_probs.stride(2), lengths[b],
                          params, in.at(b, K), next.at(b, K));
      }
    });
  });
  return {out.beams, out.tokens, out.timesteps, out.lengths, out.scores, out.progress};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CPU, m) {
  m.impl("ctc_beam_search", TORCH_BOX(&ctc_beam_search));
  m.impl("ctc_beam_search_chunk", TORCH_BOX(&ctc_beam_search_chunk));
}

}  // namespace crnn_fast
