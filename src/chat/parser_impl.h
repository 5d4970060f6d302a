// The jinja2 parser's internals, shared by parser.cpp (statements, assignment targets) and parse_expression.cpp
// (expressions, filters, tests). Use parse_template() from parser.h.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"
#include "chat/parser.h"

namespace exl::chat::parse_detail {

// Bounds on nesting so that parsing, evaluation and destruction of hostile templates cannot exhaust the stack.
inline constexpr int kMaxExprDepth = 128;
inline constexpr int kMaxStatementDepth = 64;

// Token description in jinja's wording ("end of statement block", a name, an operator).
std::string describe(const Token& token);

class Parser {
 public:
  explicit Parser(LexedTemplate lexed) : lexed_(std::move(lexed)) {}

  ParsedTemplate run();

 private:
  // ---- token stream ----
  const Token& current() const { return lexed_.tokens[index_]; }
  const Token& look() const { return lexed_.tokens[std::min(index_ + 1, lexed_.tokens.size() - 1)]; }
  bool at_eof() const { return current().type == TokenType::kEof; }
  const Token& next() {
    const Token& token = current();
    if (index_ + 1 < lexed_.tokens.size()) ++index_;
    return token;
  }
  bool is_op(std::string_view op) const { return is_op(current(), op); }
  static bool is_op(const Token& token, std::string_view op) {
    return token.type == TokenType::kOperator && token.text == op;
  }
  bool is_name(std::string_view name) const { return is_name(current(), name); }
  static bool is_name(const Token& token, std::string_view name) {
    return token.type == TokenType::kName && token.text == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail_at(size_t offset, const std::string& message) const {
    fail_syntax(lexed_.source, offset, message);
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail_at(current().offset, message); }

  void expect_failed(const std::string& expected) const {
    if (at_eof()) fail_here(fmt::format("unexpected end of template, expected '{}'", expected));
    fail_here(fmt::format("expected token '{}', got '{}'", expected, describe(current())));
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) expect_failed(std::string(op));
  }
  const Token& expect_name() {
    if (current().type != TokenType::kName) expect_failed("name");
    return next();
  }
  void expect_name(std::string_view name) {
    if (!skip_name(name)) expect_failed(std::string(name));
  }
  void expect_block_end() {
    if (current().type != TokenType::kBlockEnd) expect_failed("end of statement block");
    next();
  }

  // ---- nesting guards ----
  struct DepthGuard {
    DepthGuard(Parser& parser, int& depth, int limit) : depth_(depth) {
      if (++depth_ > limit) {
        --depth_;
        parser.fail_here(fmt::format("template nested deeper than {} levels (exl limit)", limit));
      }
    }
    ~DepthGuard() { --depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    int& depth_;
  };

  ExprPtr make(ExprKind kind, size_t offset);
  // Sets the subtree height after children are attached; long operator chains are bounded here.
  ExprPtr finish(ExprPtr expr);

  // ---- statements ----
  // Parses template data and tags until a block tag whose name is in end_names (left current) or EOF.
  Body subparse(const std::vector<std::string_view>& end_names);

  [[noreturn]] void fail_unknown_tag(const Token& token) const;

  void append_expected_tags(std::string& message) const;

  // parse_statements of jinja: optional colon, block end, body until one of end_names.
  Body parse_block_body(std::string_view block, std::vector<std::string_view> end_names, bool drop_needle);

  StmtPtr new_stmt(StmtKind kind, size_t offset);

  StmtPtr parse_statement();

  StmtPtr parse_if();

  StmtPtr parse_for();

  StmtPtr parse_set();

  void parse_signature(Stmt& stmt);

  // Parses a macro or call-block body, recording whether it refers to caller/varargs/kwargs.
  Body parse_callable_body(Stmt& stmt, std::string_view block, std::string_view end_name);

  StmtPtr parse_macro();

  StmtPtr parse_call_block();

  StmtPtr parse_filter_block();

  StmtPtr parse_with();

  StmtPtr parse_generation();

  StmtPtr parse_print();

  // ---- assignment targets ----
  enum class TargetMode { kTuple, kNameOnly, kNamespace };

  static bool assignable(const std::string& name) {
    return name != "true" && name != "false" && name != "none" && name != "True" && name != "False" &&
           name != "None";
  }

  Target name_target();

  // A primary usable as a target: a name or a parenthesized tuple of targets.
  Target primary_target();

  bool is_tuple_end(const std::vector<std::string_view>& extra_end) const;

  Target tuple_target(const std::vector<std::string_view>& extra_end);

  Target parse_assign_target(TargetMode mode, const std::vector<std::string_view>& extra_end);

  // ---- expressions ----
  enum class TupleMode { kFull, kNoCondExpr };

  ExprPtr parse_tuple(TupleMode mode, const std::vector<std::string_view>& extra_end, bool explicit_parens);

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this, expr_depth_, kMaxExprDepth);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr();

  ExprPtr binary(ExprKind kind, size_t offset, ExprPtr left, ExprPtr right);

  ExprPtr parse_or();

  ExprPtr parse_and();

  ExprPtr parse_not();

  ExprPtr parse_compare();

  ExprPtr arithmetic(size_t offset, BinaryOp op, ExprPtr left, ExprPtr right);

  ExprPtr parse_math1();

  ExprPtr parse_concat();

  ExprPtr parse_math2();

  ExprPtr parse_pow();

  ExprPtr parse_unary(bool with_filter);

  void record_name(const std::string& name) {
    for (auto* sink : name_sinks_) sink->insert(name);
  }

  ExprPtr parse_primary();

  ExprPtr parse_list();

  ExprPtr parse_dict();

  ExprPtr parse_postfix(ExprPtr node);

  ExprPtr parse_subscript(ExprPtr node);

  // One subscript: an expression or a slice [start]:[stop][:[step]]. A slice comes back as a kSlice node holding
  // its three (nullable) bounds in kwargs; parse_subscript turns it into children after the target.
  ExprPtr parse_subscribed();

  void parse_call_args(Expr& call);

  ExprPtr parse_call(ExprPtr node);

  ExprPtr parse_filter_expr(ExprPtr node);

  std::string dotted_name();

  ExprPtr parse_filter(ExprPtr node, bool start_inline);

  ExprPtr parse_test(ExprPtr node);

  // Filters/tests inside a conditional expression are only resolved when evaluated (jinja's soft frames).
  static void mark_soft(Expr& expr);

  void check_unknown_filters() const;

  LexedTemplate lexed_;
  size_t index_ = 0;
  int expr_depth_ = 0;
  int statement_depth_ = 0;
  int loop_depth_ = 0;
  bool soft_ = false;
  std::vector<std::pair<std::string_view, std::vector<std::string_view>>> open_blocks_;
  std::vector<std::set<std::string>*> name_sinks_;
  std::vector<const Expr*> unknown_;
};

}  // namespace exl::chat::parse_detail
