#include "chat/parser.h"

#include "chat/builtins.h"
#include "chat/parser_impl.h"
#include "core/error.h"

namespace exl::chat {

namespace parse_detail {

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

ParsedTemplate Parser::run() {
  Body body = subparse({});
  if (!at_eof()) fail_here(fmt::format("unexpected '{}'", describe(current())));
  check_unknown_filters();
  return ParsedTemplate{std::move(lexed_.source), std::move(body)};
}

Body Parser::subparse(const std::vector<std::string_view>& end_names) {
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

void Parser::fail_unknown_tag(const Token& token) const {
  std::string message = token.type == TokenType::kName
                            ? fmt::format("Encountered unknown tag '{}'.", token.text)
                            : fmt::format("expected a tag name, got '{}'.", describe(token));
  append_expected_tags(message);
  fail_at(token.offset, message);
}

void Parser::append_expected_tags(std::string& message) const {
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

Body Parser::parse_block_body(std::string_view block, std::vector<std::string_view> end_names, bool drop_needle) {
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

StmtPtr Parser::new_stmt(StmtKind kind, size_t offset) {
  auto stmt = std::make_unique<Stmt>();
  stmt->kind = kind;
  stmt->offset = offset;
  return stmt;
}

StmtPtr Parser::parse_statement() {
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

StmtPtr Parser::parse_if() {
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

StmtPtr Parser::parse_for() {
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

StmtPtr Parser::parse_set() {
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

void Parser::parse_signature(Stmt& stmt) {
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

Body Parser::parse_callable_body(Stmt& stmt, std::string_view block, std::string_view end_name) {
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

StmtPtr Parser::parse_macro() {
  auto stmt = new_stmt(StmtKind::kMacro, next().offset);
  stmt->name = parse_assign_target(TargetMode::kNameOnly, {}).name;
  parse_signature(*stmt);
  stmt->body = parse_callable_body(*stmt, "macro", "endmacro");
  return stmt;
}

StmtPtr Parser::parse_call_block() {
  auto stmt = new_stmt(StmtKind::kCallBlock, next().offset);
  if (is_op("(")) parse_signature(*stmt);
  const size_t call_offset = current().offset;
  ExprPtr call = parse_expression(true);
  if (call->kind != ExprKind::kCall) fail_at(call_offset, "expected call");
  stmt->exprs.push_back(std::move(call));
  stmt->body = parse_callable_body(*stmt, "call", "endcall");
  return stmt;
}

StmtPtr Parser::parse_filter_block() {
  auto stmt = new_stmt(StmtKind::kFilterBlock, next().offset);
  stmt->filter = parse_filter(make(ExprKind::kBlockInput, current().offset), true);
  const bool saved_soft = soft_;
  soft_ = false;
  stmt->body = parse_block_body("filter", {"endfilter"}, true);
  soft_ = saved_soft;
  return stmt;
}

StmtPtr Parser::parse_with() {
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

StmtPtr Parser::parse_generation() {
  auto stmt = new_stmt(StmtKind::kScope, next().offset);
  const bool saved_soft = soft_;
  soft_ = false;
  stmt->body = parse_block_body("generation", {"endgeneration"}, true);
  soft_ = saved_soft;
  return stmt;
}

StmtPtr Parser::parse_print() {
  auto stmt = new_stmt(StmtKind::kPrint, next().offset);
  while (current().type != TokenType::kBlockEnd) {
    if (!stmt->exprs.empty()) expect_op(",");
    stmt->exprs.push_back(parse_expression(true));
  }
  return stmt;
}

Target Parser::name_target() {
  const Token& token = expect_name();
  if (!assignable(token.text)) fail_at(token.offset, "can't assign to 'const'");
  Target target;
  target.name = token.text;
  return target;
}

Target Parser::primary_target() {
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

bool Parser::is_tuple_end(const std::vector<std::string_view>& extra_end) const {
  const Token& token = current();
  if (token.type == TokenType::kVariableEnd || token.type == TokenType::kBlockEnd || is_op(")")) return true;
  if (token.type == TokenType::kEof) return true;
  return token.type == TokenType::kName &&
         std::find(extra_end.begin(), extra_end.end(), token.text) != extra_end.end();
}

Target Parser::tuple_target(const std::vector<std::string_view>& extra_end) {
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

Target Parser::parse_assign_target(TargetMode mode, const std::vector<std::string_view>& extra_end) {
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

}  // namespace parse_detail

ParsedTemplate parse_template(std::string_view source) { return parse_detail::Parser(lex_template(source)).run(); }

}  // namespace exl::chat
