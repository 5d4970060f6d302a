#include "core/error.h"

namespace exl {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kCorruptFile: return "corrupt file";
    case ErrorKind::kOutOfMemory: return "out of memory";
    case ErrorKind::kCuda: return "cuda";
    case ErrorKind::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace exl
