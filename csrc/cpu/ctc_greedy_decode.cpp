// Greedy (best-path) CTC decoding on the CPU, parallel over the batch.
#include "common.h"

namespace crnn_fast {
namespace {

template <typename scalar_t>
void greedy_decode_cpu(const Tensor& log_probs, const int64_t* lengths, int64_t blank, int32_t* tokens,
                       int32_t* out_lengths) {
  using acc_t = acc_type_t<scalar_t>;
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  const int64_t sB = log_probs.stride(0), sT = log_probs.stride(1), sC = log_probs.stride(2);
  const auto* data = static_cast<const scalar_t*>(log_probs.const_data_ptr());
  // Aim for ~64k scores per task so small batches are not split across threads.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, T * C));

  torch::stable::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t len = clamp_length(lengths[b], T);
      int32_t* row = tokens + b * T;
      int64_t n = 0;
      int64_t prev = -1;
      for (int64_t t = 0; t < len; ++t) {
        const scalar_t* frame = data + b * sB + t * sT;
        // argmax with torch.argmax's rules: first maximum wins, NaN beats everything.
        int64_t best = 0;
        acc_t best_v = static_cast<acc_t>(frame[0]);
        for (int64_t c = 1; c < C && best_v == best_v; ++c) {
          const acc_t v = static_cast<acc_t>(frame[c * sC]);
          if (v > best_v || v != v) {
            best_v = v;
            best = c;
          }
        }
        if (best != blank && best != prev) row[n++] = static_cast<int32_t>(best);
        prev = best;
      }
      std::fill(row + n, row + T, -1);
      out_lengths[b] = static_cast<int32_t>(n);
    }
  });
}

std::tuple<Tensor, Tensor> ctc_greedy_decode(Tensor log_probs, Tensor input_lengths, int64_t blank) {
  check_log_probs(log_probs);
  check_lengths(input_lengths, log_probs, "input_lengths");
  STD_TORCH_CHECK(log_probs.is_cpu(), "log_probs must be a CPU tensor for the CPU kernel");
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  STD_TORCH_CHECK(blank >= 0 && blank < C, "blank must be in [0, ", C, "), got ", blank);

  input_lengths = torch::stable::contiguous(input_lengths);
  const int64_t* lengths = checked_cpu_lengths(input_lengths, T, "input_lengths");

  Tensor tokens = torch::stable::empty({B, T}, ScalarType::Int, std::nullopt, log_probs.device());
  Tensor out_lengths = torch::stable::empty({B}, ScalarType::Int, std::nullopt, log_probs.device());
  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    greedy_decode_cpu<decltype(tag)>(log_probs, lengths, blank, static_cast<int32_t*>(tokens.mutable_data_ptr()),
                                     static_cast<int32_t*>(out_lengths.mutable_data_ptr()));
  });
  return {tokens, out_lengths};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CPU, m) {
  m.impl("ctc_greedy_decode", TORCH_BOX(&ctc_greedy_decode));
}

}  // namespace crnn_fast
