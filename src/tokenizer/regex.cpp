#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <memory>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace exl::tokenizer::detail {

namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
  if (n < 0) return fmt::format("PCRE2 error {}", code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& where) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    fail(ErrorKind::kUnsupported, "{}: cannot compile regex \"{}\" at offset {}: {}", where, pattern, error_offset,
         pcre2_message(error_code));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::Regex(Regex&& other) noexcept : code_(other.code_), jit_(other.jit_) { other.code_ = nullptr; }

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    if (code_ != nullptr) pcre2_code_free(as_code(code_));
    code_ = other.code_;
    jit_ = other.jit_;
    other.code_ = nullptr;
  }
  return *this;
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(as_code(code_));
}

void Regex::find_all(std::string_view text, std::vector<MatchRange>& out) const {
  if (text.empty()) return;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(as_code(code_), nullptr), &pcre2_match_data_free);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = jit_ ? pcre2_jit_match(as_code(code_), subject, text.size(), pos, 0, data.get(), nullptr)
                  : pcre2_match(as_code(code_), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail(ErrorKind::kInternal, "regex match failed: {}", pcre2_message(rc));
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    size_t start = ov[0], end = ov[1];
    if (end > start) {
      out.push_back({start, end});
      pos = end;
    } else {
      if (start >= text.size()) break;
      pos = start + utf8_length(static_cast<unsigned char>(text[start]));
    }
  }
}

std::string Regex::escape(std::string_view literal) {
  std::string out;
  out.reserve(literal.size() + 4);
  out += "\\Q";
  size_t i = 0;
  while (i < literal.size()) {
    size_t end = literal.find("\\E", i);
    if (end == std::string_view::npos) {
      out.append(literal.substr(i));
      break;
    }
    out.append(literal.substr(i, end - i));
    out += "\\E\\\\E\\Q";
    i = end + 2;
  }
  out += "\\E";
  return out;
}

}  // namespace exl::tokenizer::detail
