#include "backend/cuda/device_buffer.h"

#include "backend/cuda/cuda_check.h"

namespace exl::cuda {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(err == cudaErrorMemoryAllocation ? ErrorKind::kOutOfMemory : ErrorKind::kCuda,
         "cudaMalloc of {:.1f} MiB failed: {} ({:.1f} MiB free of {:.1f} MiB)", bytes / 1048576.0,
         cudaGetErrorString(err), free_b / 1048576.0, total_b / 1048576.0);
  }
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

void DeviceBuffer::upload(const void* host, size_t bytes, size_t offset) {
  EXL_CHECK(offset + bytes <= bytes_, kInternal, "DeviceBuffer::upload: {} bytes at {} exceed the buffer's {}", bytes,
            offset, bytes_);
  if (bytes) EXL_CUDA_CHECK(cudaMemcpy(static_cast<char*>(ptr_) + offset, host, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host, size_t bytes, size_t offset) const {
  EXL_CHECK(offset + bytes <= bytes_, kInternal, "DeviceBuffer::download: {} bytes at {} exceed the buffer's {}",
            bytes, offset, bytes_);
  if (bytes) EXL_CUDA_CHECK(cudaMemcpy(host, static_cast<const char*>(ptr_) + offset, bytes, cudaMemcpyDeviceToHost));
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes) EXL_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

Stream::Stream() { EXL_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_) cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::synchronize() const { EXL_CUDA_CHECK(cudaStreamSynchronize(s_)); }

Event::Event() { EXL_CUDA_CHECK(cudaEventCreate(&e_)); }
Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_) cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}
void Event::record(cudaStream_t stream) { EXL_CUDA_CHECK(cudaEventRecord(e_, stream)); }
float Event::elapsed_ms_since(const Event& start) const {
  EXL_CUDA_CHECK(cudaEventSynchronize(e_));
  float ms = 0;
  EXL_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
  return ms;
}

CublasHandle::CublasHandle() { EXL_CUBLAS_CHECK(cublasCreate(&h_)); }
CublasHandle& CublasHandle::operator=(CublasHandle&& o) noexcept {
  if (this != &o) {
    if (h_) cublasDestroy(h_);
    h_ = std::exchange(o.h_, nullptr);
  }
  return *this;
}
CublasHandle::~CublasHandle() {
  if (h_) cublasDestroy(h_);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace exl::cuda
