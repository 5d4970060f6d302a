#include "backend/cuda/cuda_graph.h"

#include <vector>

#include "backend/cuda/cuda_check.h"

namespace exl::cuda {

CudaGraph& CudaGraph::operator=(CudaGraph&& o) noexcept {
  if (this != &o) {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    graph_ = std::exchange(o.graph_, nullptr);
    exec_ = std::exchange(o.exec_, nullptr);
  }
  return *this;
}

CudaGraph::~CudaGraph() {
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
}

CudaGraph CudaGraph::capture(cudaStream_t stream, const std::function<void()>& work) {
  CudaGraph g;
  EXL_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    work();
  } catch (...) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream, &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();
    throw;
  }
  EXL_CUDA_CHECK(cudaStreamEndCapture(stream, &g.graph_));
  EXL_CUDA_CHECK(cudaGraphInstantiate(&g.exec_, g.graph_, 0));
  return g;
}

void CudaGraph::launch(cudaStream_t stream) const {
  EXL_CHECK(exec_ != nullptr, kInternal, "CudaGraph::launch: the graph was never captured");
  EXL_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
}

int64_t CudaGraph::kernel_node_count() const {
  if (!graph_) return 0;
  size_t n = 0;
  EXL_CUDA_CHECK(cudaGraphGetNodes(graph_, nullptr, &n));
  std::vector<cudaGraphNode_t> nodes(n);
  EXL_CUDA_CHECK(cudaGraphGetNodes(graph_, nodes.data(), &n));
  int64_t kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    EXL_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
    if (type == cudaGraphNodeTypeKernel) ++kernels;
  }
  return kernels;
}

}  // namespace exl::cuda
