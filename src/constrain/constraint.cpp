#include <deque>
#include <unordered_set>

#include "constrain/constrain.h"
#include "constrain/front_ends.h"
#include "core/error.h"

namespace exl::constrain {

Constraint Constraint::json_schema(const nlohmann::json& schema, const JsonOptions& options) {
  std::string text;
  try {
    text = schema.dump();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInvalidArgument, "json schema: cannot be written as JSON (invalid UTF-8?): {}", e.what());
  }
  return json_schema_text(text, options);
}

Constraint Constraint::json_schema(const nlohmann::ordered_json& schema, const JsonOptions& options) {
  return Constraint(detail::compile_grammar(detail::json_schema_grammar(schema, options)));
}

Constraint Constraint::json_schema_text(std::string_view schema_text, const JsonOptions& options) {
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(schema_text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInvalidArgument, "json schema: expected a JSON document, found text that does not parse: {}",
         e.what());
  }
  return json_schema(schema, options);
}

Constraint Constraint::json_object(const JsonOptions& options) {
  return Constraint(detail::compile_grammar(detail::json_object_grammar(options)));
}

Constraint Constraint::regex(std::string_view pattern) {
  detail::Grammar g;
  g.what = "regex";
  g.rules.push_back({"regex", detail::parse_regex(pattern, "regex"), true});
  return Constraint(detail::compile_grammar(g));
}

Constraint Constraint::grammar(std::string_view gbnf) { return Constraint(detail::compile_grammar(detail::gbnf_grammar(gbnf))); }

const std::string& Constraint::what() const { return program_->what; }
int32_t Constraint::num_states() const { return program_->num_states(); }
int32_t Constraint::num_rules() const { return static_cast<int32_t>(program_->rules.size()); }

Matcher::Matcher(const Constraint& constraint) : Matcher(std::make_shared<detail::Runtime>(constraint.program())) {}

Matcher::Matcher(std::shared_ptr<detail::Runtime> runtime)
    : runtime_(std::move(runtime)), position_(runtime_->initial()) {}

bool Matcher::advance(uint8_t byte) {
  detail::Position next;
  {
    std::lock_guard lock(runtime_->mu);
    runtime_->step(position_, byte, next);
  }
  if (next.empty()) return false;
  position_ = std::move(next);
  return true;
}

size_t Matcher::advance(std::string_view bytes) {
  detail::Position next;
  std::lock_guard lock(runtime_->mu);
  for (size_t i = 0; i < bytes.size(); ++i) {
    runtime_->step(position_, static_cast<uint8_t>(bytes[i]), next);
    if (next.empty()) return i;
    position_.swap(next);
  }
  return bytes.size();
}

bool Matcher::accepting() const {
  std::lock_guard lock(runtime_->mu);
  return runtime_->accepts(position_);
}

bool Matcher::finished() const {
  std::lock_guard lock(runtime_->mu);
  return runtime_->accepts(position_) && runtime_->next_bytes(position_).none();
}

std::bitset<256> Matcher::next_bytes() const {
  std::lock_guard lock(runtime_->mu);
  return runtime_->next_bytes(position_);
}

std::optional<std::string> Matcher::shortest_completion(size_t max_positions) const {
  std::lock_guard lock(runtime_->mu);
  struct Entry {
    detail::Position position;
    size_t parent;
    uint8_t byte;
  };
  std::vector<Entry> entries{{position_, 0, 0}};
  std::unordered_set<detail::Position, detail::PositionHash> seen{position_};
  for (size_t i = 0; i < entries.size(); ++i) {
    if (runtime_->accepts(entries[i].position)) {
      std::string out;
      for (size_t k = i; k != 0; k = entries[k].parent) out += static_cast<char>(entries[k].byte);
      return std::string(out.rbegin(), out.rend());
    }
    detail::ByteSet next = runtime_->next_bytes(entries[i].position);
    for (int b = 0; b < 256; ++b) {
      if (!next.test(static_cast<size_t>(b))) continue;
      detail::Position p;
      runtime_->step(entries[i].position, static_cast<uint8_t>(b), p);
      if (p.empty() || !seen.insert(p).second) continue;
      if (entries.size() >= max_positions) return std::nullopt;
      entries.push_back({std::move(p), i, static_cast<uint8_t>(b)});
    }
  }
  return std::nullopt;
}

void Matcher::reset() { position_ = runtime_->initial(); }

}  // namespace exl::constrain
