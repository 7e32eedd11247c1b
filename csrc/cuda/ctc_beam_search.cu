// CTC prefix beam search on the GPU, of whole sequences and of a chunk of streams: one
// launch for the batch, a thread per sequence running the same decoder as the CPU
// kernel, no host synchronisation. The number of
// resident threads is capped so that their workspaces fit a fixed memory budget.
#include "beam_setup.h"
#include "cuda/cuda_utils.cuh"

namespace crnn_fast {
namespace {

constexpr int kThreads = 64;
constexpr int64_t kWorkspaceBudget = int64_t{1} << 30;

template <typename scalar_t>
__global__ void beam_search_kernel(const scalar_t* __restrict__ log_probs, int64_t sB, int64_t sT, int64_t sC,
                                   const int64_t* __restrict__ lengths, int64_t B, int64_t T,
                                   beam::Params params, beam::Layout layout, unsigned char* workspace,
                                   int64_t workers, int32_t* tokens, int32_t* out_lengths, float* scores,
                                   int32_t* timesteps) {
  const int64_t worker = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (worker >= workers) return;
  beam::Decoder<scalar_t> decoder(layout, workspace + worker * layout.bytes());
  const int64_t P = params.top_paths;
  for (int64_t b = worker; b < B; b += workers) {
    decoder.run(log_probs + b * sB, sT, sC, clamp_length(lengths[b], T), params, tokens + b * P * T,
                out_lengths + b * P, scores + b * P, timesteps + b * P * T);
  }
}

template <typename scalar_t>
__global__ void beam_chunk_kernel(const scalar_t* __restrict__ log_probs, int64_t sB, int64_t sT, int64_t sC,
                                  const int64_t* __restrict__ lengths, int64_t B, int64_t T, beam::Params params,
                                  beam::Layout layout, unsigned char* workspace, int64_t workers, beam::StreamIn in,
                                  beam::StreamOut out) {
  const int64_t worker = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (worker >= workers) return;
  beam::Decoder<scalar_t> decoder(layout, workspace + worker * layout.bytes());
  for (int64_t b = worker; b < B; b += workers) {
    decoder.run_chunk(log_probs + b * sB, sT, sC, clamp_length(lengths[b], T), params, in.at(b, layout.K),
                      out.at(b, layout.K));
  }
}

// Threads resident at once (each with its own workspace, within kWorkspaceBudget)
// and their workspaces.
std::pair<int64_t, Tensor> workspaces(const Tensor& log_probs, const beam::Layout& layout) {
  int sms = 0;
  STD_TORCH_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, log_probs.get_device_index()) ==
                      cudaSuccess,
                  "could not query the GPU's multiprocessor count");
  const int64_t workers = std::max<int64_t>(
      1, std::min({log_probs.size(0), int64_t{sms} * 2048, kWorkspaceBudget / layout.bytes()}));
  return {workers, torch::stable::empty({workers * layout.bytes()}, ScalarType::Byte, std::nullopt,
                                        log_probs.device())};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> ctc_beam_search(Tensor log_probs, Tensor input_lengths, int64_t beam_width,
                                                           int64_t top_paths, int64_t blank, double blank_penalty,
                                                           int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cuda(), "log_probs must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(log_probs.get_device_index());
  BeamOutputs out = prepare_beam_search(log_probs, input_lengths, beam_width, top_paths, blank, cutoff_top_n,
                                        cutoff_prob);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2);
  if (B == 0) return {out.tokens, out.lengths, out.scores, out.timesteps};
  input_lengths = torch::stable::contiguous(input_lengths);
  const beam::Params params = beam_params(C, beam_width, top_paths, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(beam_width, T, C);

  auto [workers, workspace] = workspaces(log_probs, layout);
  const int64_t blocks = (workers + kThreads - 1) / kThreads;
  const cudaStream_t stream = current_stream(log_probs);
  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    beam_search_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(log_probs.const_data_ptr()), log_probs.stride(0), log_probs.stride(1),
        log_probs.stride(2), static_cast<const int64_t*>(input_lengths.const_data_ptr()), B, T, params, layout,
        static_cast<unsigned char*>(workspace.mutable_data_ptr()), workers,
        static_cast<int32_t*>(out.tokens.mutable_data_ptr()), static_cast<int32_t*>(out.lengths.mutable_data_ptr()),
        static_cast<float*>(out.scores.mutable_data_ptr()), static_cast<int32_t*>(out.timesteps.mutable_data_ptr()));
    check_launch("ctc_beam_search");
  });
  return {out.tokens, out.lengths, out.scores, out.timesteps};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> ctc_beam_search_chunk(
    Tensor log_probs, Tensor input_lengths, Tensor beams, Tensor tokens, Tensor timesteps, Tensor progress,
    int64_t blank, double blank_penalty, int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cuda(), "log_probs must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(log_probs.get_device_index());
  StreamTensors state{beams, tokens, timesteps, progress};
  const StreamOutputs out = prepare_beam_chunk(log_probs, input_lengths, state, blank, cutoff_top_n, cutoff_prob);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2), K = beams.size(1);
  const auto result = std::make_tuple(out.beams, out.tokens, out.timesteps, out.lengths, out.scores, out.progress);
  if (B == 0) return result;
  input_lengths = torch::stable::contiguous(input_lengths);
  const beam::Params params = beam_params(C, K, 1, blank, blank_penalty, cutoff_top_n, cutoff_prob);
  const beam::Layout layout(K, T, C);
  auto [workers, workspace] = workspaces(log_probs, layout);
  const int64_t blocks = (workers + kThreads - 1) / kThreads;
  const cudaStream_t stream = current_stream(log_probs);
  dispatch_floating(log_probs.scalar_type(), "log_probs", [&](auto tag) {
    using scalar_t = decltype(tag);
    beam_chunk_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(log_probs.const_data_ptr()), log_probs.stride(0), log_probs.stride(1),
        log_probs.stride(2), static_cast<const int64_t*>(input_lengths.const_data_ptr()), B, T, params, layout,
        static_cast<unsigned char*>(workspace.mutable_data_ptr()), workers, stream_in(state), stream_out(out));
    check_launch("ctc_beam_search_chunk");
  });
  return result;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CUDA, m) {
  m.impl("ctc_beam_search", TORCH_BOX(&ctc_beam_search));
  m.impl("ctc_beam_search_chunk", TORCH_BOX(&ctc_beam_search_chunk));
}

}  // namespace crnn_fast
