// libFuzzer target: the parsers that read a model directory's files. The first byte picks the parser:
//   0: a safetensors file (8-byte header length, JSON header, data) through SafetensorsFile::parse_header;
//   1: a config.json through parse_model_config (after nlohmann's own JSON parse, which may reject the text).
// Any exl::Error is an accepted outcome (a clear error about the file); a crash, hang, sanitizer report or any
// other exception escaping the parser (for example a nlohmann type error on a field of the wrong type) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (size_t{1} << 20)) return 0;
  const uint8_t mode = data[0] % 2;
  ++data, --size;
  try {
    if (mode == 0) {
      const auto tensors =
          exl::io::SafetensorsFile::parse_header(reinterpret_cast<const std::byte*>(data), size, "fuzz.safetensors");
      // Everything parse_header accepts must lie inside the buffer.
      for (const auto& t : tensors)
        if (t.offset > size || t.nbytes > size - t.offset) __builtin_trap();
    } else {
      const std::string text(reinterpret_cast<const char*>(data), size);
      const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) return 0;
      (void)exl::io::parse_model_config(j, "config.json");
    }
  } catch (const exl::Error&) {
  }
  return 0;
}
