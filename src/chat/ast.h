// Syntax tree of a parsed template. Nodes keep the byte offset of their first token for error locations.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace exl::chat {

class Interpreter;

using FilterFn = Value (*)(Interpreter& interpreter, const Value& input, CallArgs& args);
using TestFn = bool (*)(Interpreter& interpreter, const Value& input, CallArgs& args);

enum class ExprKind {
  kLiteral,
  kName,
  kList,
  kTuple,
  kDict,         // children: key0, value0, key1, value1, ...
  kAttr,         // children[0].name
  kItem,         // children[0][children[1]]
  kSlice,        // children[0][children[1]:children[2]:children[3]] (null = omitted)
  kCall,         // children[0](children[1..], kwargs)
  kFilter,       // children[0] | name(children[1..], kwargs)
  kTest,         // children[0] is name(children[1..], kwargs)
  kNeg,
  kPos,
  kNot,
  kBinary,       // children[0] op children[1]
  kConcat,       // children joined with ~
  kCompare,      // children[0] ops[0] children[1] ops[1] children[2] ...
  kAnd,
  kOr,
  kCondExpr,     // children[0] if children[1] else children[2] (null: undefined)
  kBlockInput,   // the body of a {% filter %} / {% set x | f %} block
};

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };
enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  size_t offset = 0;
  int depth = 1;  // height of this subtree, bounded by the parser
  Value literal;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  BinaryOp binary_op = BinaryOp::kAdd;
  std::vector<CompareOp> compare_ops;
  FilterFn filter_fn = nullptr;  // null: unknown filter inside an if (jinja reports it only when evaluated)
  TestFn test_fn = nullptr;
  bool soft = false;  // inside an if or conditional expression: an unknown filter/test fails only when evaluated
};

// Assignment targets: a name, a namespace attribute (ns.attr) or a tuple of targets.
struct Target {
  enum class Kind { kName, kNamespaceAttr, kTuple };
  Kind kind = Kind::kName;
  std::string name;
  std::string attr;
  std::vector<Target> items;
};

enum class StmtKind {
  kOutput,       // text
  kPrint,        // exprs (comma separated prints of {% print a, b %} or one {{ expr }})
  kIf,           // branches
  kFor,
  kSet,
  kSetBlock,
  kMacro,
  kCallBlock,
  kFilterBlock,
  kWith,
  kScope,        // {% generation %}: renders its body in a new scope
  kBreak,
  kContinue,
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct IfBranch {
  ExprPtr test;  // null for else
  Body body;
};

struct Stmt {
  StmtKind kind = StmtKind::kOutput;
  size_t offset = 0;
  std::string text;
  std::vector<ExprPtr> exprs;  // kPrint: values; kFor: [iterable, filter?]; kSet/kWith: values; kCallBlock: [call]
  std::vector<Target> targets;  // kFor: [target]; kSet/kSetBlock: [target]; kWith: one per value
  std::vector<IfBranch> branches;
  Body body;
  Body else_body;
  ExprPtr filter;  // kSetBlock/kFilterBlock: filter chain applied to the rendered body (may be null for set)
  bool recursive = false;
  // Macros and call blocks.
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // aligned to the last defaults.size() params
  bool uses_caller = false;
  bool uses_varargs = false;
  bool uses_kwargs = false;
};

}  // namespace exl::chat
