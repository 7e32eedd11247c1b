// Greedy (best-path) CTC decoding on the GPU: one launch for the batch, one warp
// per sequence, no host synchronisation.
#include "cuda/cuda_utils.cuh"

namespace crnn_fast {
namespace {

constexpr int kWarpsPerBlock = 8;

// (value, index) ordering of torch.argmax: NaN beats everything, then the larger
// value, then the smaller index.
template <typename acc_t>
__device__ __forceinline__ bool argmax_better(acc_t v, int i, acc_t best_v, int best_i) {
  const bool v_nan = v != v, best_nan = best_v != best_v;
  if (v_nan || best_nan) return v_nan && (!best_nan || i < best_i);
  return v > best_v || (v == best_v && i < best_i);
}

template <typename scalar_t>
__global__ void greedy_decode_kernel(const scalar_t* __restrict__ log_probs, int64_t sB, int64_t sT, int64_t sC,
                                     const int64_t* __restrict__ lengths, int64_t B, int64_t T, int64_t C,
                                     int64_t blank, int32_t* __restrict__ tokens, int32_t* __restrict__ out_lengths) {
  using acc_t = acc_type_t<scalar_t>;
  const int lane = threadIdx.x % 32;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (b >= B) return;  // uniform per warp

  const int64_t len = clamp_length(lengths[b], T);
  int32_t* row = tokens + b * T;
  const scalar_t* seq = log_probs + b * sB;

  // Pass 1: the warp reduces each frame to its argmax, stored in `row` as scratch.
  for (int64_t t = 0; t < len; ++t) {
    const scalar_t* frame = seq + t * sT;
    acc_t best_v = -std::numeric_limits<acc_t>::infinity();
    int best_i = INT_MAX;
    for (int64_t c = lane; c < C; c += 32) {
      const acc_t v = static_cast<acc_t>(frame[c * sC]);
      if (argmax_better(v, static_cast<int>(c), best_v, best_i)) {
        best_v = v;
        best_i = static_cast<int>(c);
      }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const acc_t other_v = __shfl_down_sync(kFullWarp, best_v, offset);
      const int other_i = __shfl_down_sync(kFullWarp, best_i, offset);
      if (argmax_better(other_v, other_i, best_v, best_i)) {
        best_v = other_v;
        best_i = other_i;
      }
    }
    if (lane == 0) row[t] = best_i;
  }
  __syncwarp();

  // Pass 2: collapse repeats and drop blanks, 32 frames at a time, in place. A kept
  // token moves to position n + rank <= t, and every lane reads its frame before
  // any lane writes, so no unread argmax is overwritten.
  int64_t n = 0;
  int prev = -1;
  for (int64_t t0 = 0; t0 < len; t0 += 32) {
    const int64_t t = t0 + lane;
    const int cur = t < len ? row[t] : -1;
    int left = __shfl_up_sync(kFullWarp, cur, 1);
    if (lane == 0) left = prev;
    const bool keep = t < len && cur != blank && cur != left;
    const unsigned kept = __ballot_sync(kFullWarp, keep);
    __syncwarp();
    if (keep) row[n + __popc(kept & ((1u << lane) - 1u))] = cur;
    n += __popc(kept);
    prev = __shfl_sync(kFullWarp, cur, 31);
    __syncwarp();
  }
  for (int64_t t = n + lane; t < T; t += 32) row[t] = -1;
  if (lane == 0) out_lengths[b] = static_cast<int32_t>(n);
}

std::tuple<Tensor, Tensor> ctc_greedy_decode(Tensor log_probs, Tensor input_lengths, int64_t blank) {
  check_log_probs(log_probs);
  check_lengths(input_lengths, log_probs, "input_lengths");
  STD_TORCH_CHECK(log_probs.is_cuda(), "log_probs must be a CUDA tensor for the CUDA kernel");
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  STD_TORCH_CHECK(blank >= 0 && blank < C, "blank must be in [0, ", C, "), got ", blank);

  torch::stable::accelerator::DeviceGuard guard(log_probs.get_device_index());
  input_lengths = torch::stable::contiguous(input_lengths);
  Tensor tokens = torch::stable::empty({B, T}, ScalarType::Int, std::nullopt, log_probs.device());
  Tensor out_lengths = torch::stable::empty({B}, ScalarType::Int, std::nullopt, log_probs.device());
  if (B == 0) return {tokens, out_lengths};

  const int64_t blocks = (B + kWarpsPerBlock - 1) / kWarpsPerBlock;
  STD_TORCH_CHECK(blocks <= INT_MAX, "log_probs batch is too large for one launch");
  const cudaStream_t stream = current_stream(log_probs);
  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    greedy_decode_kernel<scalar_t><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const scalar_t*>(log_probs.const_data_ptr()), log_probs.stride(0), log_probs.stride(1),
        log_probs.stride(2), static_cast<const int64_t*>(input_lengths.const_data_ptr()), B, T, C, blank,
        static_cast<int32_t*>(tokens.mutable_data_ptr()), static_cast<int32_t*>(out_lengths.mutable_data_ptr()));
    check_launch("ctc_greedy_decode");
  });
  return {tokens, out_lengths};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CUDA, m) {
  m.impl("ctc_greedy_decode", TORCH_BOX(&ctc_greedy_decode));
}

}  // namespace crnn_fast
