// Renders every case of shared/testdata/chat-templates/expected.json (produced with Python Jinja2 configured as
// transformers configures it) and compares byte for byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/chat_template.h"

namespace exl::chat {
namespace {

const std::filesystem::path kTestData = EXL_TESTDATA_DIR;

nlohmann::ordered_json read_ordered_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::ordered_json::parse(buffer.str());
}

std::filesystem::path tokenizer_dir(const std::string& name) {
  if (name == "tiny-llama") return kTestData / "models" / "tiny-llama" / "fp16";
  return kTestData / "tokenizers" / name;
}

// The reference fixed strftime_now to 26 Jul 2024.
std::chrono::system_clock::time_point reference_time() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  return std::chrono::system_clock::from_time_t(mktime(&tm));
}

TEST(ChatTemplateExpected, AllCasesRenderByteIdentically) {
  const auto expected_path = kTestData / "chat-templates" / "expected.json";
  if (!std::filesystem::exists(expected_path)) {
    GTEST_SKIP() << "test data not found at " << expected_path << " (shared/testdata is not checked out)";
  }
  const auto conversations = read_ordered_json(kTestData / "chat-templates" / "conversations.json");
  const auto expected = read_ordered_json(expected_path);
  int checked = 0;
  for (const auto& item : expected["cases"]) {
    const std::string tokenizer = item["tokenizer"];
    const std::string conversation_id = item["conversation"];
    SCOPED_TRACE(tokenizer + " / " + conversation_id);
    const nlohmann::ordered_json* conversation = nullptr;
    for (const auto& c : conversations) {
      if (c["id"] == conversation_id) conversation = &c;
    }
    ASSERT_NE(conversation, nullptr);
    const TokenizerChatConfig config = load_tokenizer_chat_config(tokenizer_dir(tokenizer));
    ChatTemplateInputs inputs;
    inputs.messages = (*conversation)["messages"];
    inputs.add_generation_prompt = conversation->value("add_generation_prompt", false);
    if (conversation->contains("tools")) inputs.tools = (*conversation)["tools"];
    if (conversation->contains("documents")) inputs.documents = (*conversation)["documents"];
    if (conversation->contains("kwargs")) inputs.extra = (*conversation)["kwargs"];
    const ChatTemplate tmpl = ChatTemplate::parse(config.select_template(inputs));
    RenderOptions options;
    options.clock = reference_time;
    if (item["rendered"].is_null()) {
      try {
        tmpl.render(inputs, config.special_tokens, options);
        ADD_FAILURE() << "expected the template to raise: " << item["error"];
      } catch (const ChatTemplateRaised& e) {
        const std::string expected_error = item["error"].is_string() ? item["error"].get<std::string>() : "";
        EXPECT_NE(expected_error.find(e.what()), std::string::npos) << "raised: " << e.what();
      }
    } else {
      EXPECT_EQ(tmpl.render(inputs, config.special_tokens, options), item["rendered"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_EQ(checked, 35);
}

// Every tokenizer folder with a chat template parses.
TEST(ChatTemplateExpected, EveryShippedTemplateParses) {
  const auto root = kTestData / "tokenizers";
  if (!std::filesystem::exists(root)) GTEST_SKIP() << "test data not found at " << root;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    SCOPED_TRACE(entry.path().string());
    const TokenizerChatConfig config = load_tokenizer_chat_config(entry.path());
    for (const auto& [name, source] : config.templates) EXPECT_NO_THROW(ChatTemplate::parse(source)) << name;
  }
}

}  // namespace
}  // namespace exl::chat
