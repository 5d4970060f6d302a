// Helpers shared by filters, tests and methods: argument checks, Python conversions, attribute getters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "chat/value.h"

namespace exl::chat {

class Interpreter;

inline const std::string kComma = ",";

// len(); fails for values without a length (numbers, None, generators).
size_t py_len(const Value& value);
std::string expect_string(const Value& value, std::string_view function, std::string_view param);
int64_t expect_int(const Value& value, std::string_view function, std::string_view param);

// jinja's make_attrgetter: a dotted path ("a.b", "0") looked up item by item with the sandbox's getitem; an
// undefined result becomes `default_value` unless that is None.
Value attribute_of(Interpreter& interpreter, const Value& item, const Value& attribute, const Value& default_value);

// Key function of sort/min/max/unique: optional attribute lookup, lower-casing strings unless case sensitive.
struct SortKey {
  Interpreter* interpreter;
  Value attribute;  // None: the item itself
  bool ignore_case;
  Value operator()(const Value& item) const;
};
Value lower_if_string(const Value& value);

// dict.items() as a list of (key, value) tuples.
List dict_items(const Dict& dict);

std::string py_capitalize(std::string_view text);
std::string py_title(std::string_view text);
std::string py_center(const std::string& text, int64_t width, const std::string& fill);
// int(text, base) / float(text) of Python; nullopt where Python raises ValueError.
std::optional<int64_t> parse_py_int(std::string_view text, int base);
std::optional<double> parse_py_float(std::string_view text);
// int(x) of a float: nullopt for NaN; fails for infinities and values outside 64 bits.
std::optional<Value> float_to_int(double value);
// round(x, ndigits) of Python (correctly rounded, ties to even).
double py_round(double value, int64_t ndigits);

}  // namespace exl::chat
