// Reading JSON files with errors that name the file and the field.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace exl {

// Parses a whole JSON file; kNotFound if missing, kCorruptFile (with the parser's position) if malformed.
nlohmann::json read_json_file(const std::filesystem::path& path);

// Reads a whole file into a string; kNotFound if it cannot be opened.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace exl
