// Fused sequence metrics (distances and their batch sums) on the CPU.
#include "cpu/pair_metrics.h"

namespace crnn_fast {
namespace {

std::tuple<Tensor, Tensor> sequence_metrics(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths,
                                            std::optional<Tensor> fold) {
  check_pairs(hyp, hyp_lengths, ref, ref_lengths);
  STD_TORCH_CHECK(hyp.is_cpu(), "hyp must be a CPU tensor for the CPU kernel");
  hyp_lengths = torch::stable::contiguous(hyp_lengths);
  ref_lengths = torch::stable::contiguous(ref_lengths);
  const int64_t* hyp_lens = checked_cpu_lengths(hyp_lengths, hyp.size(1), "hyp_lengths");
  const int64_t* ref_lens = checked_cpu_lengths(ref_lengths, ref.size(1), "ref_lengths");
  if (fold.has_value()) fold = checked_fold(*fold, hyp);
  const int64_t* fold_data = fold ? static_cast<const int64_t*>(fold->const_data_ptr()) : nullptr;
  const int64_t fold_size = fold ? fold->size(0) : 0;
  Tensor distances = torch::stable::empty({hyp.size(0)}, ScalarType::Int, std::nullopt, hyp.device());
  Tensor totals = torch::stable::empty({kNumTotals}, ScalarType::Long, std::nullopt, hyp.device());
  dispatch_tokens(hyp.scalar_type(), "hyp", [&](auto tag) {
    pair_metrics_cpu<decltype(tag)>(hyp, hyp_lens, ref, ref_lens, fold_data, fold_size,
                                    static_cast<int32_t*>(distances.mutable_data_ptr()),
                                    static_cast<int64_t*>(totals.mutable_data_ptr()));
  });
  return {distances, totals};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CPU, m) {
  m.impl("sequence_metrics", TORCH_BOX(&sequence_metrics));
}

}  // namespace crnn_fast
