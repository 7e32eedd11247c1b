// Levenshtein distances of a batch of padded token sequences on the CPU.
#include "cpu/pair_metrics.h"

namespace crnn_fast {
namespace {

Tensor edit_distance(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths) {
  check_pairs(hyp, hyp_lengths, ref, ref_lengths);
  STD_TORCH_CHECK(hyp.is_cpu(), "hyp must be a CPU tensor for the CPU kernel");
  hyp_lengths = torch::stable::contiguous(hyp_lengths);
  ref_lengths = torch::stable::contiguous(ref_lengths);
  const int64_t* hyp_lens = checked_cpu_lengths(hyp_lengths, hyp.size(1), "hyp_lengths");
  const int64_t* ref_lens = checked_cpu_lengths(ref_lengths, ref.size(1), "ref_lengths");
  Tensor distances = torch::stable::empty({hyp.size(0)}, ScalarType::Int, std::nullopt, hyp.device());
  dispatch_tokens(hyp.scalar_type(), "hyp", [&](auto tag) {
    pair_metrics_cpu<decltype(tag)>(hyp, hyp_lens, ref, ref_lens, nullptr, 0,
                                    static_cast<int32_t*>(distances.mutable_data_ptr()), nullptr);
  });
  return distances;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CPU, m) {
  m.impl("edit_distance", TORCH_BOX(&edit_distance));
}

}  // namespace crnn_fast
