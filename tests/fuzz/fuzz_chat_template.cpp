// libFuzzer target: parses and renders arbitrary template text against a fixed conversation (with tools), under
// tight limits. Any exl::Error is an accepted outcome; a crash, hang, sanitizer report or other exception is a bug.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chat/chat_template.h"

namespace {

const exl::chat::ChatTemplateInputs& fuzz_inputs() {
  static const exl::chat::ChatTemplateInputs inputs = [] {
    exl::chat::ChatTemplateInputs in;
    in.messages = nlohmann::ordered_json::parse(R"([
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Hi \u00e9 <think>x</think>"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "abcdefghi", "type": "function",
        "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, null, true]}}}]},
      {"role": "tool", "content": "{\"ok\": 1}", "tool_call_id": "abcdefghi"}])");
    in.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f",
      "description": "d", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}])");
    in.add_generation_prompt = true;
    in.extra = nlohmann::ordered_json::parse(R"({"date_string": "26 Jul 2024", "enable_thinking": false})");
    return in;
  }();
  return inputs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  exl::chat::SpecialTokenStrings tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  exl::chat::RenderOptions options;
  options.limits.max_output_bytes = size_t{1} << 20;
  options.limits.max_steps = 200000;
  options.limits.max_depth = 100;
  options.clock = [] { return std::chrono::system_clock::time_point(std::chrono::hours(24 * 365 * 54)); };
  try {
    const auto tmpl = exl::chat::ChatTemplate::parse(source);
    (void)tmpl.render(fuzz_inputs(), tokens, options);
  } catch (const exl::Error&) {
    // Syntax errors, template errors, raise_exception and limits are all expected outcomes.
  }
  return 0;
}
