// Fused sequence metrics on the GPU: distances and their batch sums in one launch;
// the sums stay on the device.
#include "cuda/pair_metrics.cuh"

namespace crnn_fast {
namespace {

std::tuple<Tensor, Tensor> sequence_metrics(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths,
                                            std::optional<Tensor> fold) {
  check_pairs(hyp, hyp_lengths, ref, ref_lengths);
  STD_TORCH_CHECK(hyp.is_cuda(), "hyp must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(hyp.get_device_index());
  if (fold.has_value()) fold = checked_fold(*fold, hyp);
  const int64_t* fold_data = fold ? static_cast<const int64_t*>(fold->const_data_ptr()) : nullptr;
  const int64_t fold_size = fold ? fold->size(0) : 0;
  Tensor distances = torch::stable::empty({hyp.size(0)}, ScalarType::Int, std::nullopt, hyp.device());
  Tensor totals = torch::stable::empty({kNumTotals}, ScalarType::Long, std::nullopt, hyp.device());
  auto* sums = static_cast<unsigned long long*>(totals.mutable_data_ptr());
  STD_TORCH_CHECK(cudaMemsetAsync(sums, 0, kNumTotals * sizeof(int64_t), current_stream(hyp)) == cudaSuccess,
                  "could not clear the metric totals");
  dispatch_tokens(hyp.scalar_type(), "hyp", [&](auto tag) {
    launch_pair_metrics<decltype(tag)>(hyp, hyp_lengths, ref, ref_lengths, fold_data, fold_size, distances, sums);
  });
  return {distances, totals};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CUDA, m) {
  m.impl("sequence_metrics", TORCH_BOX(&sequence_metrics));
}

}  // namespace crnn_fast
