// Expression grammar of the parser (jinja2's parse_tuple ... parse_primary, filters and tests).
#include "chat/builtins.h"
#include "chat/parser_impl.h"
#include "core/error.h"

namespace exl::chat::parse_detail {

ExprPtr Parser::make(ExprKind kind, size_t offset) {
  auto expr = std::make_unique<Expr>();
  expr->kind = kind;
  expr->offset = offset;
  return expr;
}

ExprPtr Parser::finish(ExprPtr expr) {
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

ExprPtr Parser::parse_tuple(TupleMode mode, const std::vector<std::string_view>& extra_end, bool explicit_parens) {
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

ExprPtr Parser::parse_condexpr() {
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

ExprPtr Parser::binary(ExprKind kind, size_t offset, ExprPtr left, ExprPtr right) {
  auto expr = make(kind, offset);
  expr->children.push_back(std::move(left));
  expr->children.push_back(std::move(right));
  return finish(std::move(expr));
}

ExprPtr Parser::parse_or() {
  const size_t offset = current().offset;
  ExprPtr left = parse_and();
  while (skip_name("or")) left = binary(ExprKind::kOr, offset, std::move(left), parse_and());
  return left;
}

ExprPtr Parser::parse_and() {
  const size_t offset = current().offset;
  ExprPtr left = parse_not();
  while (skip_name("and")) left = binary(ExprKind::kAnd, offset, std::move(left), parse_not());
  return left;
}

ExprPtr Parser::parse_not() {
  if (is_name("not")) {
    DepthGuard guard(*this, expr_depth_, kMaxExprDepth);
    auto expr = make(ExprKind::kNot, next().offset);
    expr->children.push_back(parse_not());
    return finish(std::move(expr));
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
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

ExprPtr Parser::arithmetic(size_t offset, BinaryOp op, ExprPtr left, ExprPtr right) {
  auto expr = make(ExprKind::kBinary, offset);
  expr->binary_op = op;
  expr->children.push_back(std::move(left));
  expr->children.push_back(std::move(right));
  return finish(std::move(expr));
}

ExprPtr Parser::parse_math1() {
  const size_t offset = current().offset;
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    const BinaryOp op = next().text == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
    left = arithmetic(offset, op, std::move(left), parse_concat());
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  const size_t offset = current().offset;
  ExprPtr first = parse_math2();
  if (!is_op("~")) return first;
  auto concat = make(ExprKind::kConcat, offset);
  concat->children.push_back(std::move(first));
  while (skip_op("~")) concat->children.push_back(parse_math2());
  return finish(std::move(concat));
}

ExprPtr Parser::parse_math2() {
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

ExprPtr Parser::parse_pow() {
  const size_t offset = current().offset;
  ExprPtr left = parse_unary(true);
  while (skip_op("**")) left = arithmetic(offset, BinaryOp::kPow, std::move(left), parse_unary(true));
  return left;
}

ExprPtr Parser::parse_unary(bool with_filter) {
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

ExprPtr Parser::parse_primary() {
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

ExprPtr Parser::parse_list() {
  auto list = make(ExprKind::kList, next().offset);
  while (!is_op("]")) {
    if (!list->children.empty()) expect_op(",");
    if (is_op("]")) break;
    list->children.push_back(parse_expression(true));
  }
  expect_op("]");
  return finish(std::move(list));
}

ExprPtr Parser::parse_dict() {
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

ExprPtr Parser::parse_postfix(ExprPtr node) {
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

ExprPtr Parser::parse_subscript(ExprPtr node) {
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

ExprPtr Parser::parse_subscribed() {
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

void Parser::parse_call_args(Expr& call) {
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

ExprPtr Parser::parse_call(ExprPtr node) {
  auto call = make(ExprKind::kCall, node->offset);
  call->children.push_back(std::move(node));
  parse_call_args(*call);
  return finish(std::move(call));
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
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

std::string Parser::dotted_name() {
  std::string name = expect_name().text;
  while (is_op(".")) {
    next();
    name += "." + expect_name().text;
  }
  return name;
}

ExprPtr Parser::parse_filter(ExprPtr node, bool start_inline) {
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

ExprPtr Parser::parse_test(ExprPtr node) {
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

void Parser::mark_soft(Expr& expr) {
  if (expr.kind == ExprKind::kFilter || expr.kind == ExprKind::kTest) expr.soft = true;
  for (auto& child : expr.children) {
    if (child) mark_soft(*child);
  }
  for (auto& [name, child] : expr.kwargs) {
    if (child) mark_soft(*child);
  }
}

void Parser::check_unknown_filters() const {
  for (const Expr* expr : unknown_) {
    if (expr->soft) continue;
    fail(ErrorKind::kInvalidArgument, "chat template: no {} named '{}' at {}",
         expr->kind == ExprKind::kFilter ? "filter" : "test", expr->name,
         describe_location(lexed_.source, expr->offset));
  }
}

}  // namespace exl::chat::parse_detail
