// The chat templates shipped in shared/testdata on conversations beyond expected.json (tool calls and results,
// several tool calls, reasoning content, unicode, raise_exception paths, empty input), with the output Python
// Jinja2 3.1.6 produces when configured as transformers configures it.
#include <gtest/gtest.h>

#include <filesystem>

#include "chat/chat_template.h"

namespace exl::chat {
namespace {

const std::filesystem::path kTestData = EXL_TESTDATA_DIR;

// clang-format off
const char* const kConversations = "{\n \"tool_roundtrip\": {\n  \"messages\": [\n   {\n    \"role\": \"system\",\n    \"content\": \"Be brief.\"\n   },\n   {\n    \"role\": \"user\",\n    \"content\": \"Weather in Paris?\"\n   },\n   {\n    \"role\": \"assistant\",\n    \"content\": \"\",\n    \"tool_calls\": [\n     {\n      \"id\": \"call12345\",\n      \"type\": \"function\",\n      \"function\": {\n       \"name\": \"get_weather\",\n       \"arguments\": {\n        \"city\": \"Paris\",\n        \"unit\": \"c\"\n       }\n      }\n     }\n    ]\n   },\n   {\n    \"role\": \"tool\",\n    \"content\": \"{\\\"temp\\\": 21.5}\",\n    \"tool_call_id\": \"call12345\"\n   },\n   {\n    \"role\": \"assistant\",\n    \"content\": \"It is 21.5 °C.\"\n   }\n  ],\n  \"tools\": [\n   {\n    \"type\": \"function\",\n    \"function\": {\n     \"name\": \"get_weather\",\n     \"description\": \"Get the weather\",\n     \"parameters\": {\n      \"type\": \"object\",\n      \"properties\": {\n       \"city\": {\n        \"type\": \"string\"\n       },\n       \"unit\": {\n        \"type\": \"string\",\n        \"enum\": [\n         \"c\",\n         \"f\"\n        ]\n       }\n      },\n      \"required\": [\n       \"city\"\n      ]\n     }\n    }\n   }\n  ],\n  \"add_generation_prompt\": false\n },\n \"two_tool_calls\": {\n  \"messages\": [\n   {\n    \"role\": \"user\",\n    \"content\": \"Paris and Rome?\"\n   },\n   {\n    \"role\": \"assistant\",\n    \"content\": \"Checking.\",\n    \"tool_calls\": [\n     {\n      \"id\": \"aaaaaaaaa\",\n      \"type\": \"function\",\n      \"function\": {\n       \"name\": \"get_weather\",\n       \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"\n      }\n     },\n     {\n      \"id\": \"bbbbbbbbb\",\n      \"type\": \"function\",\n      \"function\": {\n       \"name\": \"get_weather\",\n       \"arguments\": {\n        \"city\": \"Rome\"\n       }\n      }\n     }\n    ]\n   },\n   {\n    \"role\": \"tool\",\n    \"content\": \"20\",\n    \"tool_call_id\": \"aaaaaaaaa\"\n   },\n   {\n    \"role\": \"tool\",\n    \"content\": \"25\",\n    \"tool_call_id\": \"bbbbbbbbb\"\n   }\n  ],\n  \"tools\": [\n   {\n    \"type\": \"function\",\n    \"function\": {\n     \"name\": \"get_weather\",\n     \"description\": \"Get the weather\",\n     \"parameters\": {\n      \"type\": \"object\",\n      \"properties\": {\n       \"city\": {\n        \"type\": \"string\"\n       },\n       \"unit\": {\n        \"type\": \"string\",\n        \"enum\": [\n         \"c\",\n         \"f\"\n        ]\n       }\n      },\n      \"required\": [\n       \"city\"\n      ]\n     }\n    }\n   }\n  ],\n  \"add_generation_prompt\": true\n },\n \"reasoning\": {\n  \"messages\": [\n   {\n    \"role\": \"user\",\n    \"content\": \"2+2?\"\n   },\n   {\n    \"role\": \"assistant\",\n    \"content\": \"<think>\\nadd\\n</think>\\n\\n4\"\n   },\n   {\n    \"role\": \"user\",\n    \"content\": \"3+3?\"\n   },\n   {\n    \"role\": \"assistant\",\n    \"content\": \"6\",\n    \"reasoning_content\": \"add again\"\n   }\n  ],\n  \"add_generation_prompt\": true,\n  \"kwargs\": {\n   \"enable_thinking\": false\n  }\n },\n \"unicode_and_specials\": {\n  \"messages\": [\n   {\n    \"role\": \"user\",\n    \"content\": \"Ünïcödé 😀 \\t tab \\\"quotes\\\" <|im_start|> {{ not a template }}\"\n   }\n  ],\n  \"add_generation_prompt\": true\n },\n \"not_alternating\": {\n  \"messages\": [\n   {\n    \"role\": \"user\",\n    \"content\": \"a\"\n   },\n   {\n    \"role\": \"user\",\n    \"content\": \"b\"\n   }\n  ],\n  \"add_generation_prompt\": true\n },\n \"empty_messages_tools\": {\n  \"messages\": [],\n  \"tools\": [\n   {\n    \"type\": \"function\",\n    \"function\": {\n     \"name\": \"get_weather\",\n     \"description\": \"Get the weather\",\n     \"parameters\": {\n      \"type\": \"object\",\n      \"properties\": {\n       \"city\": {\n        \"type\": \"string\"\n       },\n       \"unit\": {\n        \"type\": \"string\",\n        \"enum\": [\n         \"c\",\n         \"f\"\n        ]\n       }\n      },\n      \"required\": [\n       \"city\"\n      ]\n     }\n    }\n   }\n  ],\n  \"add_generation_prompt\": true\n },\n \"custom_date_no_kwargs\": {\n  \"messages\": [\n   {\n    \"role\": \"system\",\n    \"content\": \"  sys  \"\n   },\n   {\n    \"role\": \"user\",\n    \"content\": \"hi\"\n   }\n  ],\n  \"add_generation_prompt\": false,\n  \"kwargs\": {\n   \"date_string\": \"01 Jan 2030\",\n   \"tools_in_user_message\": false\n  },\n  \"tools\": [\n   {\n    \"type\": \"function\",\n    \"function\": {\n     \"name\": \"get_weather\",\n     \"description\": \"Get the weather\",\n     \"parameters\": {\n      \"type\": \"object\",\n      \"properties\": {\n       \"city\": {\n        \"type\": \"string\"\n       },\n       \"unit\": {\n        \"type\": \"string\",\n        \"enum\": [\n         \"c\",\n         \"f\"\n        ]\n       }\n      },\n      \"required\": [\n       \"city\"\n      ]\n     }\n    }\n   }\n  ]\n }\n}";

struct ShippedCase {
  const char* tokenizer;
  const char* conversation;
  const char* expected;
  const char* jinja_error;  // non-null: Jinja2 raised this
};

const ShippedCase kCases[] = {
    {"llama3-8b", "tool_roundtrip",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n{\"temp\": 21.5}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nIt is 21.5 °C.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "two_tool_calls",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nParis and Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nChecking.<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n20<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n25<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "reasoning",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\nadd\n</think>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n6<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "unicode_and_specials",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "not_alternating",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "empty_messages_tools",
     "<|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3-8b", "custom_date_no_kwargs",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3.2", "tool_roundtrip",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"c\",\n                        \"f\"\n                    ]\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"temp\\\": 21.5}\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nIt is 21.5 °C.<|eot_id|>",
     nullptr},
    {"llama3.2", "two_tool_calls",
     "",
     "TemplateError: This model only supports single tool-calls at once!"},
    {"llama3.2", "reasoning",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\nadd\n</think>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n6<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3.2", "unicode_and_specials",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3.2", "not_alternating",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"llama3.2", "empty_messages_tools",
     "",
     "UndefinedError: list object has no element 0"},
    {"llama3.2", "custom_date_no_kwargs",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 01 Jan 2030\n\nYou have access to the following functions. To call a function, please respond with JSON for a function call.Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": \"Get the weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n                },\n                \"unit\": {\n                    \"type\": \"string\",\n                    \"enum\": [\n                        \"c\",\n                        \"f\"\n                    ]\n                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
     nullptr},
    {"mistral-nemo-tekken", "tool_roundtrip",
     "<s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS][INST]Weather in Paris?[/INST][TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}, \"id\": \"call12345\"}]</s>[TOOL_RESULTS]{\"content\": {\"temp\": 21.5}, \"call_id\": \"call12345\"}[/TOOL_RESULTS]It is 21.5 °C.</s>",
     nullptr},
    {"mistral-nemo-tekken", "two_tool_calls",
     "<s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS][INST]Paris and Rome?[/INST][TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\", \"id\": \"aaaaaaaaa\"}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}, \"id\": \"bbbbbbbbb\"}]</s>[TOOL_RESULTS]{\"content\": 20, \"call_id\": \"aaaaaaaaa\"}[/TOOL_RESULTS][TOOL_RESULTS]{\"content\": 25, \"call_id\": \"bbbbbbbbb\"}[/TOOL_RESULTS]",
     nullptr},
    {"mistral-nemo-tekken", "reasoning",
     "<s>[INST]2+2?[/INST]<think>\nadd\n</think>\n\n4</s>[INST]3+3?[/INST]6</s>",
     nullptr},
    {"mistral-nemo-tekken", "unicode_and_specials",
     "<s>[INST]Ünïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}[/INST]",
     nullptr},
    {"mistral-nemo-tekken", "not_alternating",
     "",
     "TemplateError: After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."},
    {"mistral-nemo-tekken", "empty_messages_tools",
     "",
     "UndefinedError: list object has no element 0"},
    {"mistral-nemo-tekken", "custom_date_no_kwargs",
     "<s>[AVAILABLE_TOOLS][{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS][INST]  sys  \n\nhi[/INST]",
     nullptr},
    {"phi-3-mini", "tool_roundtrip",
     "<|system|>\nBe brief.<|end|>\n<|user|>\nWeather in Paris?<|end|>\n<|assistant|>\n<|end|>\n<|assistant|>\nIt is 21.5 °C.<|end|>\n<|endoftext|>",
     nullptr},
    {"phi-3-mini", "two_tool_calls",
     "<|user|>\nParis and Rome?<|end|>\n<|assistant|>\nChecking.<|end|>\n<|assistant|>\n",
     nullptr},
    {"phi-3-mini", "reasoning",
     "<|user|>\n2+2?<|end|>\n<|assistant|>\n<think>\nadd\n</think>\n\n4<|end|>\n<|user|>\n3+3?<|end|>\n<|assistant|>\n6<|end|>\n<|assistant|>\n",
     nullptr},
    {"phi-3-mini", "unicode_and_specials",
     "<|user|>\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|end|>\n<|assistant|>\n",
     nullptr},
    {"phi-3-mini", "not_alternating",
     "<|user|>\na<|end|>\n<|user|>\nb<|end|>\n<|assistant|>\n",
     nullptr},
    {"phi-3-mini", "empty_messages_tools",
     "<|assistant|>\n",
     nullptr},
    {"phi-3-mini", "custom_date_no_kwargs",
     "<|system|>\n  sys  <|end|>\n<|user|>\nhi<|end|>\n<|endoftext|>",
     nullptr},
    {"qwen2.5", "tool_roundtrip",
     "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 21.5}\n</tool_response><|im_end|>\n<|im_start|>assistant\nIt is 21.5 °C.<|im_end|>\n",
     nullptr},
    {"qwen2.5", "two_tool_calls",
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nParis and Rome?<|im_end|>\n<|im_start|>assistant\nChecking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n20\n</tool_response>\n<tool_response>\n25\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen2.5", "reasoning",
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n6<|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen2.5", "unicode_and_specials",
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen2.5", "not_alternating",
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen2.5", "empty_messages_tools",
     "",
     "UndefinedError: list object has no element 0"},
    {"qwen2.5", "custom_date_no_kwargs",
     "<|im_start|>system\n  sys  \n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
     nullptr},
    {"qwen3", "tool_roundtrip",
     "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 21.5}\n</tool_response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nIt is 21.5 °C.<|im_end|>\n",
     nullptr},
    {"qwen3", "two_tool_calls",
     "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nParis and Rome?<|im_end|>\n<|im_start|>assistant\nChecking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n20\n</tool_response>\n<tool_response>\n25\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen3", "reasoning",
     "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\nadd again\n</think>\n\n6<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
     nullptr},
    {"qwen3", "unicode_and_specials",
     "<|im_start|>user\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen3", "not_alternating",
     "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n",
     nullptr},
    {"qwen3", "empty_messages_tools",
     "",
     "UndefinedError: list object has no element 0"},
    {"qwen3", "custom_date_no_kwargs",
     "<|im_start|>system\n  sys  \n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"type\": \"string\", \"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
     nullptr},
    {"tiny-llama", "tool_roundtrip",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n{\"temp\": 21.5}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nIt is 21.5 °C.<|eot_id|>",
     nullptr},
    {"tiny-llama", "two_tool_calls",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nParis and Rome?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nChecking.<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n20<|eot_id|><|start_header_id|>tool<|end_header_id|>\n\n25<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"tiny-llama", "reasoning",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<think>\nadd\n</think>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n3+3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n6<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"tiny-llama", "unicode_and_specials",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nÜnïcödé 😀 \t tab \"quotes\" <|im_start|> {{ not a template }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"tiny-llama", "not_alternating",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"tiny-llama", "empty_messages_tools",
     "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\n",
     nullptr},
    {"tiny-llama", "custom_date_no_kwargs",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
     nullptr},
};
// clang-format on

// The reference fixed strftime_now to 26 Jul 2024.
std::chrono::system_clock::time_point reference_time() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  return std::chrono::system_clock::from_time_t(mktime(&tm));
}

TEST(ShippedTemplates, MatchJinja2OnMoreConversations) {
  if (!std::filesystem::exists(kTestData / "tokenizers")) {
    GTEST_SKIP() << "test data not found at " << kTestData << " (shared/testdata is not checked out)";
  }
  const auto conversations = nlohmann::ordered_json::parse(kConversations);
  for (const ShippedCase& c : kCases) {
    SCOPED_TRACE(std::string(c.tokenizer) + " / " + c.conversation);
    const std::string tokenizer = c.tokenizer;
    const auto dir = tokenizer == "tiny-llama" ? kTestData / "models" / "tiny-llama" / "fp16"
                                               : kTestData / "tokenizers" / tokenizer;
    const TokenizerChatConfig config = load_tokenizer_chat_config(dir);
    const auto& conversation = conversations[c.conversation];
    ChatTemplateInputs inputs;
    inputs.messages = conversation["messages"];
    inputs.add_generation_prompt = conversation["add_generation_prompt"].get<bool>();
    if (conversation.contains("tools")) inputs.tools = conversation["tools"];
    if (conversation.contains("kwargs")) inputs.extra = conversation["kwargs"];
    const ChatTemplate tmpl = ChatTemplate::parse(config.select_template(inputs));
    RenderOptions options;
    options.clock = reference_time;
    if (c.jinja_error == nullptr) {
      EXPECT_EQ(tmpl.render(inputs, config.special_tokens, options), c.expected);
      continue;
    }
    const std::string jinja_error = c.jinja_error;
    try {
      tmpl.render(inputs, config.special_tokens, options);
      ADD_FAILURE() << "Jinja2 raised: " << jinja_error;
    } catch (const ChatTemplateRaised& e) {
      EXPECT_EQ("TemplateError: " + std::string(e.what()), jinja_error);
    } catch (const Error& e) {
      EXPECT_EQ(jinja_error.rfind("TemplateError", 0), std::string::npos) << "exl: " << e.what();
    }
  }
}

}  // namespace
}  // namespace exl::chat
