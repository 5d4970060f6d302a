// pdl_enabled(): compute capability >= 9.0 of the current device (griddepcontrol needs sm_90).
#include "kernels/pdl.cuh"

namespace exl::kernels {

bool pdl_enabled() {
  constexpr int kMaxDevices = 64;
  static int cached[kMaxDevices] = {};  // 0 unknown, 1 yes, 2 no
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0) return false;
  if (device >= kMaxDevices) return false;
  if (cached[device] == 0) {
    int major = 0;
    check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "pdl: compute capability");
    cached[device] = major >= 9 ? 1 : 2;
  }
  return cached[device] == 1;
}

}  // namespace exl::kernels
