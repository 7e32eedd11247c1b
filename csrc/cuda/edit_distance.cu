// Levenshtein distances of a batch of padded token sequences on the GPU.
#include "cuda/pair_metrics.cuh"

namespace crnn_fast {
namespace {

Tensor edit_distance(Tensor hyp, Tensor hyp_lengths, Tensor ref, Tensor ref_lengths) {
  check_pairs(hyp, hyp_lengths, ref, ref_lengths);
  STD_TORCH_CHECK(hyp.is_cuda(), "hyp must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(hyp.get_device_index());
  Tensor distances = torch::stable::empty({hyp.size(0)}, ScalarType::Int, std::nullopt, hyp.device());
  dispatch_tokens(hyp.scalar_type(), "hyp", [&](auto tag) {
    launch_pair_metrics<decltype(tag)>(hyp, hyp_lengths, ref, ref_lengths, nullptr, 0, distances, nullptr);
  });
  return distances;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CUDA, m) {
  m.impl("edit_distance", TORCH_BOX(&edit_distance));
}

}  // namespace crnn_fast
