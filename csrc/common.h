// Helpers shared by the CPU and CUDA kernels. Everything here is header-only and
// uses only the LibTorch stable ABI, so one build loads on every torch >= 2.10.
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Exception.h>
#include <torch/headeronly/macros/Macros.h>
#include <torch/headeronly/util/Half.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <tuple>
#include <limits>
#include <type_traits>

namespace crnn_fast {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;

// Calls f(scalar_t{}) with the C++ type of a floating log-prob tensor.
template <typename F>
decltype(auto) dispatch_floating(ScalarType dtype, const char* arg, F&& f) {
  switch (dtype) {
    case ScalarType::Float:
      return f(float{});
    case ScalarType::Double:
      return f(double{});
    case ScalarType::Half:
      return f(torch::headeronly::Half{});
    case ScalarType::BFloat16:
      return f(torch::headeronly::BFloat16{});
    default:
      STD_TORCH_CHECK(false, arg, " must be float32, float64, float16 or bfloat16");
  }
}

// Calls f(tok_t{}) with the C++ type of an int32 or int64 token tensor.
template <typename F>
decltype(auto) dispatch_tokens(ScalarType dtype, const char* arg, F&& f) {
  switch (dtype) {
    case ScalarType::Int:
      return f(int32_t{});
    case ScalarType::Long:
      return f(int64_t{});
    default:
      STD_TORCH_CHECK(false, arg, " must be int32 or int64");
  }
}

// Half and bfloat16 compare exactly after widening to float.
template <typename scalar_t>
using acc_type_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Checks shared by every kernel entry point; the Python wrappers give friendlier
// messages first, these keep direct torch.ops calls safe.
inline void check_log_probs(const Tensor& log_probs) {
  STD_TORCH_CHECK(log_probs.dim() == 3, "log_probs must be 3-D (B, T, C), got ", log_probs.dim(), "-D");
  STD_TORCH_CHECK(log_probs.size(2) > 0, "log_probs must have at least one class");
  STD_TORCH_CHECK(log_probs.size(2) <= std::numeric_limits<int32_t>::max(),
                  "log_probs has more classes than int32 token ids can hold");
}

inline void check_lengths(const Tensor& lengths, const Tensor& like, const char* arg) {
  STD_TORCH_CHECK(like.dim() >= 1, "expected a batched tensor beside ", arg);
  STD_TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == like.size(0), arg, " must have shape (B,) = (",
                  like.size(0), ",)");
  STD_TORCH_CHECK(lengths.scalar_type() == ScalarType::Long, arg, " must be int64");
  STD_TORCH_CHECK(lengths.device() == like.device(), arg, " must be on the same device as log_probs");
}

// hyp/ref token tensors of the pair ops: (B, W) int32/int64 on one device, with
// (B,) int64 lengths beside them.
inline void check_pairs(const Tensor& hyp, const Tensor& hyp_lengths, const Tensor& ref, const Tensor& ref_lengths) {
  STD_TORCH_CHECK(hyp.dim() == 2, "hyp must be 2-D (B, T), got ", hyp.dim(), "-D");
  STD_TORCH_CHECK(ref.dim() == 2, "ref must be 2-D (B, T), got ", ref.dim(), "-D");
  STD_TORCH_CHECK(hyp.size(0) == ref.size(0), "hyp and ref must have the same batch size, got ", hyp.size(0),
                  " and ", ref.size(0));
  STD_TORCH_CHECK(hyp.scalar_type() == ref.scalar_type(), "hyp and ref must have the same dtype");
  STD_TORCH_CHECK(hyp.device() == ref.device(), "hyp and ref must be on the same device");
  check_lengths(hyp_lengths, hyp, "hyp_lengths");
  check_lengths(ref_lengths, ref, "ref_lengths");
}

// The token-folding map of sequence_metrics, contiguous.
inline Tensor checked_fold(const Tensor& fold, const Tensor& hyp) {
  STD_TORCH_CHECK(fold.dim() == 1 && fold.scalar_type() == ScalarType::Long && fold.device() == hyp.device(),
                  "fold must be a 1-D int64 tensor on the device of hyp");
  return torch::stable::contiguous(fold);
}

// Host-side range check of a CPU lengths tensor against the padded width.
inline const int64_t* checked_cpu_lengths(const Tensor& lengths, int64_t width, const char* arg) {
  const auto* values = static_cast<const int64_t*>(lengths.const_data_ptr());
  for (int64_t b = 0; b < lengths.size(0); ++b) {
    STD_TORCH_CHECK(values[b] >= 0 && values[b] <= width, arg, "[", b, "] = ", values[b], " is outside [0, ",
                    width, "]");
  }
  return values;
}

// Arguments of ctc_beam_search that both backends check the same way.
inline void check_beam_args(int64_t classes, int64_t beam_width, int64_t top_paths, int64_t blank,
                            int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(blank >= 0 && blank < classes, "blank must be in [0, ", classes, "), got ", blank);
  STD_TORCH_CHECK(top_paths >= 1 && top_paths <= beam_width, "top_paths must be in [1, beam_width], got ", top_paths);
  STD_TORCH_CHECK(cutoff_top_n >= 1, "cutoff_top_n must be >= 1, got ", cutoff_top_n);
  STD_TORCH_CHECK(cutoff_prob > 0.0 && cutoff_prob <= 1.0, "cutoff_prob must be in (0, 1], got ", cutoff_prob);
}

// Lengths are clamped into [0, limit] by every kernel, so no value can index
// out of bounds even when a caller skips the wrappers' checks.
template <typename T>
C10_HOST_DEVICE inline T clamp_length(T value, T limit) {
  return value < 0 ? T(0) : (value > limit ? limit : value);
}

}  // namespace crnn_fast
