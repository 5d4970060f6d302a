#include "chat/parser.h"

#include <algorithm>
#include <set>

#include "chat/builtins.h"
#include "chat/lexer.h"
#include "core/error.h"

namespace exl::chat {

namespace {

// Bounds on nesting so that parsing, evaluation and destruction of hostile templates cannot exhaust the stack.
constexpr int kMaxExprDepth = 128;
constexpr int kMaxStatementDepth = 64;

std::string describe(const Token& token) {
  switch (token.type) {
    case TokenType::kData: return "template data / text";
    case TokenType::kVariableBegin: return "begin of print statement";
    case TokenType::kVariableEnd: return "end of print statement";
    case TokenType::kBlockBegin: return "begin of statement block";
    case TokenType::kBlockEnd: return "end of statement block";
    case TokenType::kName: return token.text;
    case TokenType::kString: return "string";
    case TokenType::kInteger: return "integer";
    case TokenType::kFloat: return "float";
    case TokenType::kOperator: return token.text;
    case TokenType::kEof: return "end of template";
  }
  return "?";
}

class Parser {
 public:
  explicit Parser(LexedTemplate lexed) : lexed_(std::move(lexed)) {}

  ParsedTemplate run() {
    Body body = subparse({});
    if (!at_eof()) fail_here(fmt::format("unexpected '{}'", describe(current())));
    check_unknown_filters();
    return ParsedTemplate{std::move(lexed_.source), std::move(body)};
  }

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

  ExprPtr make(ExprKind kind, size_t offset) {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->offset = offset;
    return expr;
  }
  // Sets the subtree height after children are attached; long operator chains are bounded here.
  ExprPtr finish(ExprPtr expr) {
    int depth = 0;
    for (const auto& child : expr->children) {
      if (child) depth = std::max(depth, child->depth);
    }
    for (const auto& [name, child] : expr->kwargs) {
      if (child) depth = std::max(depth, child->depth);
    }
    expr->depth = depth + 1;
    if (expr->depth > kMaxExprDepth) {
      fail_at(expr->offset, fmt::format("expression nested deeper than {} levels (exl limit)", kMaxExprDepth));
    }
    return expr;
  }

  // ---- statements ----
  // Parses template data and tags until a block tag whose name is in end_names (left current) or EOF.
  Body subparse(const std::vector<std::string_view>& end_names) {
    Body body;
    while (!at_eof()) {
      const Token& token = current();
      if (token.type == TokenType::kData) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kOutput;
        stmt->offset = token.offset;
        stmt->text = token.text;
        body.push_back(std::move(stmt));
        next();
      } else if (token.type == TokenType::kVariableBegin) {
        next();
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kPrint;
        stmt->offset = token.offset;
        stmt->exprs.push_back(parse_tuple(TupleMode::kFull, {}, /*explicit_parens=*/false));
        if (current().type != TokenType::kVariableEnd) expect_failed("end of print statement");
        next();
        body.push_back(std::move(stmt));
      } else if (token.type == TokenType::kBlockBegin) {
        next();
        if (current().type == TokenType::kName &&
            std::find(end_names.begin(), end_names.end(), current().text) != end_names.end()) {
          return body;
        }
        body.push_back(parse_statement());
        expect_block_end();
      } else {
        fail_here(fmt::format("unexpected '{}'", describe(token)));
      }
    }
    return body;
  }

  [[noreturn]] void fail_unknown_tag(const Token& token) const {
    std::string message = token.type == TokenType::kName
                              ? fmt::format("Encountered unknown tag '{}'.", token.text)
                              : fmt::format("expected a tag name, got '{}'.", describe(token));
    append_expected_tags(message);
    fail_at(token.offset, message);
  }

  void append_expected_tags(std::string& message) const {
    if (open_blocks_.empty()) return;
    const auto& [block, expected] = open_blocks_.back();
    std::string names;
    for (size_t i = 0; i < expected.size(); ++i) {
      names += (i == 0 ? "'" : " or '") + std::string(expected[i]) + "'";
    }
    message += fmt::format(" Jinja was looking for the following tags: {}. The innermost block that needs to be "
                           "closed is '{}'.",
                           names, block);
  }

  // parse_statements of jinja: optional colon, block end, body until one of end_names.
  Body parse_block_body(std::string_view block, std::vector<std::string_view> end_names, bool drop_needle) {
    skip_op(":");
    expect_block_end();
    DepthGuard guard(*this, statement_depth_, kMaxStatementDepth);
    open_blocks_.emplace_back(block, end_names);
    Body body = subparse(end_names);
    if (at_eof()) {
      std::string message = "Unexpected end of template.";
      append_expected_tags(message);
      fail_here(message);
    }
    open_blocks_.pop_back();
    if (drop_needle) next();
    return body;
  }

  StmtPtr new_stmt(StmtKind kind, size_t offset) {
    auto stmt = std::make_unique<Stmt>();
    stmt->kind = kind;
    stmt->offset = offset;
    return stmt;
  }

  StmtPtr parse_statement() {
    const Token& token = current();
    if (token.type != TokenType::kName) fail_unknown_tag(token);
    const std::string& tag = token.text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "print") return parse_print();
    if (tag == "generation") return parse_generation();
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail_here(fmt::format("'{}' outside of a for loop", tag));
      next();
      return new_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, token.offset);
    }
    if (tag == "block" || tag == "extends" || tag == "include" || tag == "import" || tag == "from" ||
        tag == "autoescape" || tag == "trans") {
      fail(ErrorKind::kUnsupported,
           "chat template: '{{% {} %}}' at {} is not supported by exl (supported tags: if, for, set, macro, call, "
           "filter, with, print, raw, break, continue, generation)",
           tag, describe_location(lexed_.source, token.offset));
    }
    fail_unknown_tag(token);
  }

  StmtPtr parse_if() {
    auto stmt = new_stmt(StmtKind::kIf, next().offset);
    const bool saved_soft = soft_;
    soft_ = true;
    while (true) {
      IfBranch branch;
      branch.test = parse_tuple(TupleMode::kNoCondExpr, {}, false);
      branch.body = parse_block_body("if", {"elif", "else", "endif"}, false);
      stmt->branches.push_back(std::move(branch));
      const Token& token = next();
      if (token.text == "elif") continue;
      if (token.text == "else") {
        IfBranch else_branch;
        else_branch.body = parse_block_body("if", {"endif"}, true);
        stmt->branches.push_back(std::move(else_branch));
      }
      break;
    }
    soft_ = saved_soft;
    return stmt;
  }

  StmtPtr parse_for() {
    auto stmt = new_stmt(StmtKind::kFor, next().offset);
    stmt->targets.push_back(parse_assign_target(TargetMode::kTuple, {"in"}));
    expect_name("in");
    stmt->exprs.push_back(parse_tuple(TupleMode::kNoCondExpr, {"recursive"}, false));
    const bool saved_soft = soft_;
    soft_ = false;
    if (skip_name("if")) stmt->exprs.push_back(parse_expression(/*with_condexpr=*/true));
    stmt->recursive = skip_name("recursive");
    ++loop_depth_;
    stmt->body = parse_block_body("for", {"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") {
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;
      stmt->else_body = parse_block_body("for", {"endfor"}, true);
      loop_depth_ = saved_loops;
    }
    soft_ = saved_soft;
    return stmt;
  }

  StmtPtr parse_set() {
    auto stmt = new_stmt(StmtKind::kSet, next().offset);
    stmt->targets.push_back(parse_assign_target(TargetMode::kNamespace, {}));
    if (skip_op("=")) {
      stmt->exprs.push_back(parse_tuple(TupleMode::kFull, {}, false));
      return stmt;
    }
    stmt->kind = StmtKind::kSetBlock;
    if (is_op("|")) stmt->filter = parse_filter(make(ExprKind::kBlockInput, current().offset), false);
    const bool saved_soft = soft_;
    soft_ = false;
    stmt->body = parse_block_body("set", {"endset"}, true);
    soft_ = saved_soft;
    return stmt;
  }

  void parse_signature(Stmt& stmt) {
    expect_op("(");
    while (!is_op(")")) {
      if (!stmt.params.empty()) expect_op(",");
      const Target target = parse_assign_target(TargetMode::kNameOnly, {});
      stmt.params.push_back(target.name);
      if (skip_op("=")) {
        stmt.defaults.push_back(parse_expression(true));
      } else if (!stmt.defaults.empty()) {
        fail_here("non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  // Parses a macro or call-block body, recording whether it refers to caller/varargs/kwargs.
  Body parse_callable_body(Stmt& stmt, std::string_view block, std::string_view end_name) {
    const bool saved_soft = soft_;
    const int saved_loops = loop_depth_;
    soft_ = false;
    loop_depth_ = 0;
    std::set<std::string> names;
    name_sinks_.push_back(&names);
    Body body = parse_block_body(block, {end_name}, true);
    name_sinks_.pop_back();
    soft_ = saved_soft;
    loop_depth_ = saved_loops;
    stmt.uses_caller = names.count("caller") > 0;
    stmt.uses_varargs = names.count("varargs") > 0;
    stmt.uses_kwargs = names.count("kwargs") > 0;
    return body;
  }

  StmtPtr parse_macro() {
    auto stmt = new_stmt(StmtKind::kMacro, next().offset);
    stmt->name = parse_assign_target(TargetMode::kNameOnly, {}).name;
    parse_signature(*stmt);
    stmt->body = parse_callable_body(*stmt, "macro", "endmacro");
    return stmt;
  }

  StmtPtr parse_call_block() {
    auto stmt = new_stmt(StmtKind::kCallBlock, next().offset);
    if (is_op("(")) parse_signature(*stmt);
    const size_t call_offset = current().offset;
    ExprPtr call = parse_expression(true);
    if (call->kind != ExprKind::kCall) fail_at(call_offset, "expected call");
    stmt->exprs.push_back(std::move(call));
    stmt->body = parse_callable_body(*stmt, "call", "endcall");
    return stmt;
  }

  StmtPtr parse_filter_block() {
    auto stmt = new_stmt(StmtKind::kFilterBlock, next().offset);
    stmt->filter = parse_filter(make(ExprKind::kBlockInput, current().offset), true);
    const bool saved_soft = soft_;
    soft_ = false;
    stmt->body = parse_block_body("filter", {"endfilter"}, true);
    soft_ = saved_soft;
    return stmt;
  }

  StmtPtr parse_with() {
    auto stmt = new_stmt(StmtKind::kWith, next().offset);
    while (current().type != TokenType::kBlockEnd) {
      if (!stmt->targets.empty()) expect_op(",");
      stmt->targets.push_back(parse_assign_target(TargetMode::kTuple, {}));
      expect_op("=");
      stmt->exprs.push_back(parse_expression(true));
    }
    const bool saved_soft = soft_;
    soft_ = false;
    stmt->body = parse_block_body("with", {"endwith"}, true);
    soft_ = saved_soft;
    return stmt;
  }

  StmtPtr parse_generation() {
    auto stmt = new_stmt(StmtKind::kScope, next().offset);
    const bool saved_soft = soft_;
    soft_ = false;
    stmt->body = parse_block_body("generation", {"endgeneration"}, true);
    soft_ = saved_soft;
    return stmt;
  }

  StmtPtr parse_print() {
    auto stmt = new_stmt(StmtKind::kPrint, next().offset);
    while (current().type != TokenType::kBlockEnd) {
      if (!stmt->exprs.empty()) expect_op(",");
      stmt->exprs.push_back(parse_expression(true));
    }
    return stmt;
  }

  // ---- assignment targets ----
  enum class TargetMode { kTuple, kNameOnly, kNamespace };

  static bool assignable(const std::string& name) {
    return name != "true" && name != "false" && name != "none" && name != "True" && name != "False" &&
           name != "None";
  }

  Target name_target() {
    const Token& token = expect_name();
    if (!assignable(token.text)) fail_at(token.offset, "can't assign to 'const'");
    Target target;
    target.name = token.text;
    return target;
  }

  // A primary usable as a target: a name or a parenthesized tuple of targets.
  Target primary_target() {
    if (is_op("(")) {
      const size_t offset = next().offset;
      Target target = tuple_target({});
      expect_op(")");
      if (target.kind == Target::Kind::kTuple && target.items.empty()) fail_at(offset, "can't assign to 'tuple'");
      return target;
    }
    if (current().type != TokenType::kName) fail_here(fmt::format("can't assign to '{}'", describe(current())));
    return name_target();
  }

  bool is_tuple_end(const std::vector<std::string_view>& extra_end) const {
    const Token& token = current();
    if (token.type == TokenType::kVariableEnd || token.type == TokenType::kBlockEnd || is_op(")")) return true;
    if (token.type == TokenType::kEof) return true;
    return token.type == TokenType::kName &&
           std::find(extra_end.begin(), extra_end.end(), token.text) != extra_end.end();
  }

  Target tuple_target(const std::vector<std::string_view>& extra_end) {
    Target tuple;
    tuple.kind = Target::Kind::kTuple;
    bool is_tuple = false;
    while (true) {
      if (!tuple.items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      tuple.items.push_back(primary_target());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (tuple.items.empty()) fail_here(fmt::format("Expected an expression, got '{}'", describe(current())));
      return std::move(tuple.items[0]);
    }
    return tuple;
  }

  Target parse_assign_target(TargetMode mode, const std::vector<std::string_view>& extra_end) {
    if (mode == TargetMode::kNamespace && current().type == TokenType::kName && is_op(look(), ".")) {
      Target target;
      target.kind = Target::Kind::kNamespaceAttr;
      target.name = next().text;
      next();
      target.attr = expect_name().text;
      return target;
    }
    if (mode == TargetMode::kNameOnly) return name_target();
    return tuple_target(extra_end);
  }

  // ---- expressions ----
  enum class TupleMode { kFull, kNoCondExpr };

  ExprPtr parse_tuple(TupleMode mode, const std::vector<std::string_view>& extra_end, bool explicit_parens) {
    const size_t offset = current().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(mode == TupleMode::kFull));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail_here(fmt::format("Expected an expression, got '{}'", describe(current())));
    }
    auto tuple = make(ExprKind::kTuple, offset);
    tuple->children = std::move(items);
    return finish(std::move(tuple));
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this, expr_depth_, kMaxExprDepth);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const size_t offset = current().offset;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      auto cond = make(ExprKind::kCondExpr, offset);
      ExprPtr test = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      cond->children.push_back(std::move(expr));
      cond->children.push_back(std::move(test));
      cond->children.push_back(std::move(otherwise));
      mark_soft(*cond);
      expr = finish(std::move(cond));
    }
    return expr;
  }

  ExprPtr binary(ExprKind kind, size_t offset, ExprPtr left, ExprPtr right) {
    auto expr = make(kind, offset);
    expr->children.push_back(std::move(left));
    expr->children.push_back(std::move(right));
    return finish(std::move(expr));
  }

  ExprPtr parse_or() {
    const size_t offset = current().offset;
    ExprPtr left = parse_and();
    while (skip_name("or")) left = binary(ExprKind::kOr, offset, std::move(left), parse_and());
    return left;
  }

  ExprPtr parse_and() {
    const size_t offset = current().offset;
    ExprPtr left = parse_not();
    while (skip_name("and")) left = binary(ExprKind::kAnd, offset, std::move(left), parse_not());
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this, expr_depth_, kMaxExprDepth);
      auto expr = make(ExprKind::kNot, next().offset);
      expr->children.push_back(parse_not());
      return finish(std::move(expr));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t offset = current().offset;
    ExprPtr first = parse_math1();
    auto compare = make(ExprKind::kCompare, offset);
    compare->children.push_back(std::move(first));
    while (true) {
      static const std::pair<std::string_view, CompareOp> kOps[] = {
          {"==", CompareOp::kEq}, {"!=", CompareOp::kNe}, {"<", CompareOp::kLt},
          {"<=", CompareOp::kLe}, {">", CompareOp::kGt},  {">=", CompareOp::kGe}};
      bool matched = false;
      for (const auto& [spelling, op] : kOps) {
        if (is_op(spelling)) {
          next();
          compare->compare_ops.push_back(op);
          matched = true;
          break;
        }
      }
      if (!matched) {
        if (skip_name("in")) {
          compare->compare_ops.push_back(CompareOp::kIn);
        } else if (is_name("not") && is_name(look(), "in")) {
          next();
          next();
          compare->compare_ops.push_back(CompareOp::kNotIn);
        } else {
          break;
        }
      }
      compare->children.push_back(parse_math1());
    }
    if (compare->compare_ops.empty()) return std::move(compare->children[0]);
    return finish(std::move(compare));
  }

  ExprPtr arithmetic(size_t offset, BinaryOp op, ExprPtr left, ExprPtr right) {
    auto expr = make(ExprKind::kBinary, offset);
    expr->binary_op = op;
    expr->children.push_back(std::move(left));
    expr->children.push_back(std::move(right));
    return finish(std::move(expr));
  }

  ExprPtr parse_math1() {
    const size_t offset = current().offset;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const BinaryOp op = next().text == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
      left = arithmetic(offset, op, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const size_t offset = current().offset;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto concat = make(ExprKind::kConcat, offset);
    concat->children.push_back(std::move(first));
    while (skip_op("~")) concat->children.push_back(parse_math2());
    return finish(std::move(concat));
  }

  ExprPtr parse_math2() {
    const size_t offset = current().offset;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string& op = next().text;
      const BinaryOp kind = op == "*" ? BinaryOp::kMul : op == "/" ? BinaryOp::kDiv
                            : op == "//" ? BinaryOp::kFloorDiv : BinaryOp::kMod;
      left = arithmetic(offset, kind, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    const size_t offset = current().offset;
    ExprPtr left = parse_unary(true);
    while (skip_op("**")) left = arithmetic(offset, BinaryOp::kPow, std::move(left), parse_unary(true));
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this, expr_depth_, kMaxExprDepth);
    const size_t offset = current().offset;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const ExprKind kind = next().text == "-" ? ExprKind::kNeg : ExprKind::kPos;
      node = make(kind, offset);
      node->children.push_back(parse_unary(false));
      node = finish(std::move(node));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  void record_name(const std::string& name) {
    for (auto* sink : name_sinks_) sink->insert(name);
  }

  ExprPtr parse_primary() {
    const Token& token = current();
    if (token.type == TokenType::kName) {
      next();
      auto expr = make(ExprKind::kLiteral, token.offset);
      if (token.text == "true" || token.text == "True") {
        expr->literal = Value::boolean(true);
      } else if (token.text == "false" || token.text == "False") {
        expr->literal = Value::boolean(false);
      } else if (token.text == "none" || token.text == "None") {
        expr->literal = Value::none();
      } else {
        expr->kind = ExprKind::kName;
        expr->name = token.text;
        record_name(token.text);
      }
      return expr;
    }
    if (token.type == TokenType::kString) {
      auto expr = make(ExprKind::kLiteral, token.offset);
      std::string text;
      while (current().type == TokenType::kString) text += next().text;
      expr->literal = Value::string(std::move(text));
      return expr;
    }
    if (token.type == TokenType::kInteger || token.type == TokenType::kFloat) {
      next();
      auto expr = make(ExprKind::kLiteral, token.offset);
      expr->literal = token.type == TokenType::kInteger ? Value::integer(token.int_value)
                                                        : Value::floating(token.float_value);
      return expr;
    }
    if (is_op("(")) {
      next();
      ExprPtr expr = parse_tuple(TupleMode::kFull, {}, true);
      expect_op(")");
      return expr;
    }
    if (is_op("[")) return parse_list();
    if (is_op("{")) return parse_dict();
    if (token.type == TokenType::kEof) fail_here("unexpected end of template");
    fail_here(fmt::format("unexpected '{}'", describe(token)));
  }

  ExprPtr parse_list() {
    auto list = make(ExprKind::kList, next().offset);
    while (!is_op("]")) {
      if (!list->children.empty()) expect_op(",");
      if (is_op("]")) break;
      list->children.push_back(parse_expression(true));
    }
    expect_op("]");
    return finish(std::move(list));
  }

  ExprPtr parse_dict() {
    auto dict = make(ExprKind::kDict, next().offset);
    while (!is_op("}")) {
      if (!dict->children.empty()) expect_op(",");
      if (is_op("}")) break;
      dict->children.push_back(parse_expression(true));
      expect_op(":");
      dict->children.push_back(parse_expression(true));
    }
    expect_op("}");
    return finish(std::move(dict));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& token = next();
    if (token.text == ".") {
      const Token& attr = next();
      if (attr.type == TokenType::kName) {
        auto expr = make(ExprKind::kAttr, node->offset);
        expr->name = attr.text;
        expr->children.push_back(std::move(node));
        return finish(std::move(expr));
      }
      if (attr.type != TokenType::kInteger) fail_at(attr.offset, "expected name or number");
      auto index = make(ExprKind::kLiteral, attr.offset);
      index->literal = Value::integer(attr.int_value);
      auto expr = make(ExprKind::kItem, node->offset);
      expr->children.push_back(std::move(node));
      expr->children.push_back(std::move(index));
      return finish(std::move(expr));
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() != 1) {
      fail(ErrorKind::kUnsupported, "chat template: tuple subscripts (a[x, y]) at {} are not supported by exl",
           describe_location(lexed_.source, token.offset));
    }
    if (args[0]->kind == ExprKind::kSlice) {
      auto slice = make(ExprKind::kSlice, node->offset);
      slice->children.push_back(std::move(node));
      for (auto& [bound, value] : args[0]->kwargs) slice->children.push_back(std::move(value));
      return finish(std::move(slice));
    }
    auto expr = make(ExprKind::kItem, node->offset);
    expr->children.push_back(std::move(node));
    expr->children.push_back(std::move(args[0]));
    return finish(std::move(expr));
  }

  // One subscript: an expression or a slice [start]:[stop][:[step]]. A slice comes back as a kSlice node holding
  // its three (nullable) bounds in kwargs; parse_subscript turns it into children after the target.
  ExprPtr parse_subscribed() {
    const size_t offset = current().offset;
    ExprPtr start;
    if (is_op(":")) {
      next();
    } else {
      ExprPtr expr = parse_expression(true);
      if (!is_op(":")) return expr;
      next();
      start = std::move(expr);
    }
    ExprPtr stop;
    if (!is_op(":") && !is_op("]") && !is_op(",")) stop = parse_expression(true);
    ExprPtr step;
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) step = parse_expression(true);
    }
    auto slice = make(ExprKind::kSlice, offset);
    slice->kwargs.emplace_back("start", std::move(start));
    slice->kwargs.emplace_back("stop", std::move(stop));
    slice->kwargs.emplace_back("step", std::move(step));
    return slice;
  }

  void parse_call_args(Expr& call) {
    const size_t offset = current().offset;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) {
        fail(ErrorKind::kUnsupported, "chat template: *args / **kwargs in calls at {} are not supported by exl",
             describe_location(lexed_.source, current().offset));
      }
      if (current().type == TokenType::kName && is_op(look(), "=")) {
        std::string key = next().text;
        next();
        call.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail_at(offset, "invalid syntax for function call expression");
        call.children.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto call = make(ExprKind::kCall, node->offset);
    call->children.push_back(std::move(node));
    parse_call_args(*call);
    return finish(std::move(call));
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::string dotted_name() {
    std::string name = expect_name().text;
    while (is_op(".")) {
      next();
      name += "." + expect_name().text;
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const size_t offset = current().offset;
      auto filter = make(ExprKind::kFilter, offset);
      filter->name = dotted_name();
      filter->children.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*filter);
      filter->filter_fn = find_filter(filter->name);
      filter->soft = soft_;
      node = finish(std::move(filter));
      if (node->filter_fn == nullptr) unknown_.push_back(node.get());
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const size_t offset = next().offset;
    const bool negated = skip_name("not");
    auto test = make(ExprKind::kTest, offset);
    test->name = dotted_name();
    test->children.push_back(std::move(node));
    const Token& token = current();
    const bool starts_arg = token.type == TokenType::kName || token.type == TokenType::kString ||
                            token.type == TokenType::kInteger || token.type == TokenType::kFloat || is_op("(") ||
                            is_op("[") || is_op("{");
    if (is_op("(")) {
      parse_call_args(*test);
    } else if (starts_arg && !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("You cannot chain multiple tests with is");
      test->children.push_back(parse_postfix(parse_primary()));
    }
    test->test_fn = find_test(test->name);
    test->soft = soft_;
    ExprPtr result = finish(std::move(test));
    if (result->test_fn == nullptr) unknown_.push_back(result.get());
    if (!negated) return result;
    auto negation = make(ExprKind::kNot, offset);
    negation->children.push_back(std::move(result));
    return finish(std::move(negation));
  }

  // Filters/tests inside a conditional expression are only resolved when evaluated (jinja's soft frames).
  static void mark_soft(Expr& expr) {
    if (expr.kind == ExprKind::kFilter || expr.kind == ExprKind::kTest) expr.soft = true;
    for (auto& child : expr.children) {
      if (child) mark_soft(*child);
    }
    for (auto& [name, child] : expr.kwargs) {
      if (child) mark_soft(*child);
    }
  }

  void check_unknown_filters() const {
    for (const Expr* expr : unknown_) {
      if (expr->soft) continue;
      fail(ErrorKind::kInvalidArgument, "chat template: no {} named '{}' at {}",
           expr->kind == ExprKind::kFilter ? "filter" : "test", expr->name,
           describe_location(lexed_.source, expr->offset));
    }
  }

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

}  // namespace

ParsedTemplate parse_template(std::string_view source) { return Parser(lex_template(source)).run(); }

}  // namespace exl::chat
