// The grammar IR every front end (JSON schema, regex, GBNF) produces: regular expressions over bytes with references
// to other rules (calls), plus two constructs whose direct NFA form is much smaller than their expansion (separated
// lists with optional members, and "this language minus these exact strings"). Code points become UTF-8 byte
// sequences here, so everything downstream works on bytes.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace exl::constrain::detail {

using ByteSet = std::bitset<256>;

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

enum class ExprKind {
  kEmpty,    // matches only the empty string
  kNothing,  // matches nothing
  kBytes,    // one byte from `bytes`
  kSeq,      // items in order
  kAlt,      // one of items
  kRepeat,   // items[0] repeated min..max times (max == kUnbounded: no limit)
  kRule,     // a call of rule `rule`
  kList,     // separated list, see ListParts
  kExcept,   // items[0] minus the exact byte strings in `excluded` (items[0] may not call rules)
};

inline constexpr int kUnbounded = -1;

struct ListMember {
  ExprPtr expr;
  bool required = true;
};

// members[0] members[1] ... in this order (an optional member may be left out), then `rest` repeated
// rest_min..rest_max times; `sep` between any two emitted items; `tail` after the last emitted item (only when at
// least one was emitted). JSON objects: members = declared properties, rest = additional properties; JSON arrays:
// rest = the item.
struct ListParts {
  std::vector<ListMember> members;
  ExprPtr sep;
  ExprPtr rest;  // may be null
  int rest_min = 0;
  int rest_max = kUnbounded;
  ExprPtr tail;  // may be null
};

struct Expr {
  ExprKind kind = ExprKind::kEmpty;
  ByteSet bytes;
  std::vector<ExprPtr> items;
  int min = 0;
  int max = 0;
  int rule = -1;
  ListParts list;
  std::vector<std::string> excluded;
};

ExprPtr empty();
ExprPtr nothing();
ExprPtr bytes(const ByteSet& set);
ExprPtr byte_range(uint8_t lo, uint8_t hi);
ExprPtr literal(std::string_view text);
ExprPtr seq(std::vector<ExprPtr> items);
ExprPtr alt(std::vector<ExprPtr> items);
ExprPtr repeat(ExprPtr item, int min, int max);
ExprPtr optional(ExprPtr item);
ExprPtr rule_ref(int rule);
ExprPtr list(ListParts parts);
ExprPtr except(ExprPtr item, std::vector<std::string> excluded);

// Number of nodes (a size measure for inlining decisions), counting repeat bodies once.
size_t expr_size(const Expr& e);
bool expr_calls_rules(const Expr& e);

// A set of Unicode scalar values as sorted, disjoint, non-adjacent closed ranges.
class CodepointSet {
 public:
  struct Range {
    uint32_t lo;
    uint32_t hi;
  };
  static constexpr uint32_t kMaxCodepoint = 0x10FFFF;

  CodepointSet() = default;
  static CodepointSet of(uint32_t lo, uint32_t hi);
  static CodepointSet all();  // every scalar value (surrogates excluded)

  void add(uint32_t lo, uint32_t hi);
  void add(const CodepointSet& other);
  CodepointSet complement() const;  // within all()
  CodepointSet minus(const CodepointSet& other) const;
  bool contains(uint32_t cp) const;
  bool empty() const { return ranges_.empty(); }
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;
};

// The UTF-8 encodings of the set's members (surrogates dropped), as an alternation of byte-range sequences.
ExprPtr utf8_expr(const CodepointSet& set);
// Appends the UTF-8 encoding of one scalar value.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace exl::constrain::detail
