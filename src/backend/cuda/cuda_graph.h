// A captured CUDA graph and its executable instance (RAII, move-only).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace exl::cuda {

class CudaGraph {
 public:
  CudaGraph() = default;
  CudaGraph(CudaGraph&& o) noexcept : graph_(std::exchange(o.graph_, nullptr)), exec_(std::exchange(o.exec_, nullptr)) {}
  CudaGraph& operator=(CudaGraph&& o) noexcept;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  ~CudaGraph();

  // Records everything `work` enqueues on `stream` (thread-local capture mode) and instantiates it. If `work`
  // throws, the capture is ended and discarded before the exception propagates.
  static CudaGraph capture(cudaStream_t stream, const std::function<void()>& work);

  bool valid() const { return exec_ != nullptr; }
  void launch(cudaStream_t stream) const;
  int64_t kernel_node_count() const;  // kernel nodes in the captured graph (launches per replay)

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace exl::cuda
