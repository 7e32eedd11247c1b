// CTC prefix beam search on the CPU, of whole sequences and of a chunk of streams (and
// the streams' state: read back, compacted): sequences spread over torch's threads,
// each thread reusing one workspace for all its sequences.
#include <vector>

#include "beam_setup.h"

namespace crnn_fast {
namespace {

// Calls f(decoder, frames, b) for each sequence b of log_probs (frames: its first),
// spread over torch's threads, each thread with one decoder and workspace for all its
// sequences.
template <typename F>
void decode_each(const Tensor& log_probs, const beam::Layout& layout, F&& f) {
  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    const auto* data = static_cast<const scalar_t*>(log_probs.const_data_ptr());
    torch::stable::parallel_for(0, log_probs.size(0), 1, [&](int64_t begin, int64_t end) {
      std::vector<uint64_t> buffer((layout.bytes() + 7) / 8);  // 8-byte aligned
      beam::Decoder<scalar_t> decoder(layout, reinterpret_cast<unsigned char*>(buffer.data()));
      for (int64_t b = begin; b < end; ++b) f(decoder, data + b * log_probs.stride(0), b);
    });
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor> ctc_beam_search(Tensor log_probs, Tensor input_lengths, int64_t beam_width,
                                                           int64_t top_paths, int64_t blank, double blank_penalty,
                                                           int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cpu(), "log_probs must be a CPU tensor for the CPU kernel");
  BeamOutputs out = prepare_beam_search(log_probs, input_lengths, beam_width, top_paths, blank, cutoff_top_n,
                                        cutoff_prob);
  const int64_t T = log_probs.size(1), C = log_probs.size(2);
  input_lengths = torch::stable::contiguous(input_lengths);
  const int64_t* lengths = checked_cpu_lengths(input_lengths, T, "input_lengths");
  const beam::Params params = beam_params(C, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(beam_width, T, C);
  auto* tokens = static_cast<int32_t*>(out.tokens.mutable_data_ptr());
  auto* out_lengths = static_cast<int32_t*>(out.lengths.mutable_data_ptr());
  auto* scores = static_cast<float*>(out.scores.mutable_data_ptr());
  auto* timesteps = static_cast<int32_t*>(out.timesteps.mutable_data_ptr());

  decode_each(log_probs, layout, [&](auto& decoder, const auto* frames, int64_t b) {
    decoder.run(frames, log_probs.stride(1), log_probs.stride(2), lengths[b], params, tokens + b * top_paths * T,
                out_lengths + b * top_paths, scores + b * top_paths, timesteps + b * top_paths * T);
  });
  return {out.tokens, out.lengths, out.scores, out.timesteps};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> ctc_beam_search_chunk(Tensor log_probs, Tensor input_lengths,
                                                                 Tensor beams, Tensor progress, Tensor nodes,
                                                                 Tensor nodes_used, int64_t blank, double blank_penalty,
                                                                 int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cpu(), "log_probs must be a CPU tensor for the CPU kernel");
  const ChunkOutputs out = prepare_beam_chunk(log_probs, input_lengths, beams, progress, nodes, nodes_used, blank,
                                              cutoff_top_n, cutoff_prob);
  const int64_t T = log_probs.size(1), C = log_probs.size(2), K = beams.size(1);
  input_lengths = torch::stable::contiguous(input_lengths);
  const int64_t* lengths = checked_cpu_lengths(input_lengths, T, "input_lengths");
  const beam::Params params = beam_params(C, K, 1, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(K, T, C);
  const beam::StreamIn in = beams_of(beams, progress);
  const beam::Tree tree = tree_of(nodes, nodes_used);
  const beam::StreamOut next = out.rows();

  decode_each(log_probs, layout, [&](auto& decoder, const auto* frames, int64_t b) {
    decoder.run_chunk(frames, log_probs.stride(1), log_probs.stride(2), lengths[b], params, in.at(b, K), tree.at(b),
                      next.at(b, K));
  });
  return {out.beams, out.lengths, out.scores, out.progress};
}

std::tuple<Tensor, Tensor> ctc_beam_state_read(Tensor beams, Tensor progress, Tensor nodes, Tensor nodes_used,
                                               int64_t top_paths, int64_t width) {
  STD_TORCH_CHECK(beams.is_cpu(), "beams must be a CPU tensor for the CPU kernel");
  const StateShape shape = check_beam_state(beams, progress, nodes, nodes_used);
  auto [tokens, timesteps] = prepare_beam_read(shape, top_paths, width, beams);
  const beam::StreamIn in = beams_of(beams, progress);
  const beam::Tree tree = tree_of(nodes, nodes_used);
  auto* out_tokens = static_cast<int32_t*>(tokens.mutable_data_ptr());
  auto* out_times = static_cast<int32_t*>(timesteps.mutable_data_ptr());
  torch::stable::parallel_for(0, shape.B, 64, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const beam::StreamIn row = in.at(b, shape.K);
      beam::read_paths(row.beams, clamp_length(row.progress[1], shape.K), tree.at(b), top_paths, width,
                       out_tokens + b * top_paths * width, out_times + b * top_paths * width);
    }
  });
  return {tokens, timesteps};
}

std::tuple<Tensor, Tensor, Tensor> ctc_beam_state_compact(Tensor beams, Tensor progress, Tensor nodes,
                                                          Tensor nodes_used) {
  STD_TORCH_CHECK(beams.is_cpu(), "beams must be a CPU tensor for the CPU kernel");
  const StateShape shape = check_beam_state(beams, progress, nodes, nodes_used);
  auto [out_beams, out_nodes, out_used] = prepare_beam_compact(shape, beams);
  const beam::StreamIn in = beams_of(beams, progress);
  const beam::Tree from = tree_of(nodes, nodes_used), to = tree_of(out_nodes, out_used);
  auto* entries = static_cast<beam::Entry*>(out_beams.mutable_data_ptr());
  torch::stable::parallel_for(0, shape.B, 16, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> remap(shape.N);
    for (int64_t b = begin; b < end; ++b) {
      const beam::StreamIn row = in.at(b, shape.K);
      beam::compact(row.beams, clamp_length(row.progress[1], shape.K), shape.K, from.at(b), entries + b * shape.K,
                    to.at(b), remap.data());
    }
  });
  return {out_beams, out_nodes, out_used};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CPU, m) {
  m.impl("ctc_beam_search", TORCH_BOX(&ctc_beam_search));
  m.impl("ctc_beam_search_chunk", TORCH_BOX(&ctc_beam_search_chunk));
  m.impl("ctc_beam_state_read", TORCH_BOX(&ctc_beam_state_read));
  m.impl("ctc_beam_state_compact", TORCH_BOX(&ctc_beam_state_compact));
}

}  // namespace crnn_fast
