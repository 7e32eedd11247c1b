// CUDA helpers shared by the CUDA kernels (stable ABI only).
#pragma once

#include <cuda_runtime.h>

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>

#include "common.h"

namespace crnn_fast {

constexpr unsigned kFullWarp = 0xffffffffu;

inline cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  STD_TORCH_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream) == AOTI_TORCH_SUCCESS,
                  "could not get the current CUDA stream");
  return static_cast<cudaStream_t>(stream);
}

inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  STD_TORCH_CHECK(err == cudaSuccess, kernel, " launch failed: ", cudaGetErrorString(err));
}

}  // namespace crnn_fast
