// exl::Error: the one exception type of the library, with a kind that callers (CLI, server) map to exit codes
// and HTTP statuses. Messages name the file/tensor/op/field, what was expected and what was found.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace exl {

enum class ErrorKind {
  kInvalidArgument,
  kUnsupported,
  kNotFound,
  kCorruptFile,
  kOutOfMemory,
  kCuda,
  kInternal,
};

std::string_view error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace exl

// EXL_CHECK(cond, kind, "fmt", args...): throws exl::Error when cond is false.
#define EXL_CHECK(cond, kind, ...)                     \
  do {                                                 \
    if (!(cond)) ::exl::fail(::exl::ErrorKind::kind, __VA_ARGS__); \
  } while (0)
