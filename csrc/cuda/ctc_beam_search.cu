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
                                  beam::Tree tree, beam::StreamOut out) {
  const int64_t worker = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (worker >= workers) return;
  beam::Decoder<scalar_t> decoder(layout, workspace + worker * layout.bytes());
  for (int64_t b = worker; b < B; b += workers) {
    decoder.run_chunk(log_probs + b * sB, sT, sC, clamp_length(lengths[b], T), params, in.at(b, layout.K),
                      tree.at(b), out.at(b, layout.K));
  }
}

__global__ void beam_read_kernel(beam::StreamIn in, beam::Tree tree, int64_t B, int64_t K, int64_t top_paths,
                                 int64_t width, int32_t* tokens, int32_t* timesteps) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const beam::StreamIn row = in.at(b, K);
  beam::read_paths(row.beams, clamp_length(row.progress[1], K), tree.at(b), top_paths, width,
                   tokens + b * top_paths * width, timesteps + b * top_paths * width);
}

__global__ void beam_compact_kernel(beam::StreamIn in, beam::Tree from, beam::Tree to, int64_t B, int64_t K,
                                    beam::Entry* out, int32_t* remap) {
  const int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const beam::StreamIn row = in.at(b, K);
  beam::compact(row.beams, clamp_length(row.progress[1], K), K, from.at(b), out + b * K, to.at(b),
                remap + b * from.capacity);
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

std::tuple<Tensor, Tensor, Tensor, Tensor> ctc_beam_search_chunk(Tensor log_probs, Tensor input_lengths,
                                                                 Tensor beams, Tensor progress, Tensor nodes,
                                                                 Tensor nodes_used, int64_t blank, double blank_penalty,
                                                                 int64_t cutoff_top_n, double cutoff_prob) {
  STD_TORCH_CHECK(log_probs.is_cuda(), "log_probs must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(log_probs.get_device_index());
  const ChunkOutputs out = prepare_beam_chunk(log_probs, input_lengths, beams, progress, nodes, nodes_used, blank,
                                              cutoff_top_n, cutoff_prob);
  const int64_t B = log_probs.size(0), T = log_probs.size(1), C = log_probs.size(2), K = beams.size(1);
  const auto result = std::make_tuple(out.beams, out.lengths, out.scores, out.progress);
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
        static_cast<unsigned char*>(workspace.mutable_data_ptr()), workers, beams_of(beams, progress),
        tree_of(nodes, nodes_used), out.rows());
    check_launch("ctc_beam_search_chunk");
  });
  return result;
}

std::tuple<Tensor, Tensor> ctc_beam_state_read(Tensor beams, Tensor progress, Tensor nodes, Tensor nodes_used,
                                               int64_t top_paths, int64_t width) {
  STD_TORCH_CHECK(beams.is_cuda(), "beams must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(beams.get_device_index());
  const StateShape shape = check_beam_state(beams, progress, nodes, nodes_used);
  auto [tokens, timesteps] = prepare_beam_read(shape, top_paths, width, beams);
  if (shape.B == 0) return {tokens, timesteps};
  beam_read_kernel<<<static_cast<unsigned>((shape.B + kThreads - 1) / kThreads), kThreads, 0,
                     current_stream(beams)>>>(beams_of(beams, progress), tree_of(nodes, nodes_used), shape.B, shape.K,
                                              top_paths, width, static_cast<int32_t*>(tokens.mutable_data_ptr()),
                                              static_cast<int32_t*>(timesteps.mutable_data_ptr()));
  check_launch("ctc_beam_state_read");
  return {tokens, timesteps};
}

std::tuple<Tensor, Tensor, Tensor> ctc_beam_state_compact(Tensor beams, Tensor progress, Tensor nodes,
                                                          Tensor nodes_used) {
  STD_TORCH_CHECK(beams.is_cuda(), "beams must be a CUDA tensor for the CUDA kernel");
  torch::stable::accelerator::DeviceGuard guard(beams.get_device_index());
  const StateShape shape = check_beam_state(beams, progress, nodes, nodes_used);
  auto [out_beams, out_nodes, out_used] = prepare_beam_compact(shape, beams);
  if (shape.B == 0) return {out_beams, out_nodes, out_used};
  Tensor remap = torch::stable::empty({shape.B * shape.N}, ScalarType::Int, std::nullopt, beams.device());
  beam_compact_kernel<<<static_cast<unsigned>((shape.B + kThreads - 1) / kThreads), kThreads, 0,
                        current_stream(beams)>>>(beams_of(beams, progress), tree_of(nodes, nodes_used),
                                                 tree_of(out_nodes, out_used), shape.B, shape.K,
                                                 static_cast<beam::Entry*>(out_beams.mutable_data_ptr()),
                                                 static_cast<int32_t*>(remap.mutable_data_ptr()));
  check_launch("ctc_beam_state_compact");
  return {out_beams, out_nodes, out_used};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(crnn_fast, CUDA, m) {
  m.impl("ctc_beam_search", TORCH_BOX(&ctc_beam_search));
  m.impl("ctc_beam_search_chunk", TORCH_BOX(&ctc_beam_search_chunk));
  m.impl("ctc_beam_state_read", TORCH_BOX(&ctc_beam_state_read));
  m.impl("ctc_beam_state_compact", TORCH_BOX(&ctc_beam_state_compact));
}

}  // namespace crnn_fast
