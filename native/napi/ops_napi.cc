// tessera N-API: elementwise, reduction and matmul entry points.
#include <map>

#include "napi_util.h"

using namespace tsn;

namespace {
ts::UnaryOp unary_op(const std::string& n, const char* op) {
  static const std::map<std::string, ts::UnaryOp> m = {
      {"neg", ts::UnaryOp::Neg},         {"exp", ts::UnaryOp::Exp},         {"log", ts::UnaryOp::Log},
      {"sqrt", ts::UnaryOp::Sqrt},       {"abs", ts::UnaryOp::Abs},         {"tanh", ts::UnaryOp::Tanh},
      {"sigmoid", ts::UnaryOp::Sigmoid}, {"relu", ts::UnaryOp::Relu},       {"silu", ts::UnaryOp::Silu},
      {"gelu", ts::UnaryOp::Gelu},       {"gelu_tanh", ts::UnaryOp::GeluTanh}, {"square", ts::UnaryOp::Square},
      {"rsqrt", ts::UnaryOp::Rsqrt},     {"sin", ts::UnaryOp::Sin},         {"cos", ts::UnaryOp::Cos}};
  auto it = m.find(n);
  if (it == m.end()) ts::fail(op, "unknown unary op '", n, "'");
  return it->second;
}
ts::BinaryOp binary_op(const std::string& n, const char* op) {
  static const std::map<std::string, ts::BinaryOp> m = {
      {"add", ts::BinaryOp::Add},         {"sub", ts::BinaryOp::Sub},         {"mul", ts::BinaryOp::Mul},
      {"div", ts::BinaryOp::Div},         {"pow", ts::BinaryOp::Pow},         {"maximum", ts::BinaryOp::Maximum},
      {"minimum", ts::BinaryOp::Minimum}, {"eq", ts::BinaryOp::Eq},           {"gt", ts::BinaryOp::Gt},
      {"lt", ts::BinaryOp::Lt}};
  auto it = m.find(n);
  if (it == m.end()) ts::fail(op, "unknown binary op '", n, "'");
  return it->second;
}
ts::ReduceOp reduce_op(const std::string& n, const char* op) {
  if (n == "sum") return ts::ReduceOp::Sum;
  if (n == "mean") return ts::ReduceOp::Mean;
  if (n == "max") return ts::ReduceOp::Max;
  if (n == "min") return ts::ReduceOp::Min;
  ts::fail(op, "unknown reduction '", n, "'");
}
}  // namespace

// unary(name, x)
TS_NAPI(unary) {
  std::string n = string_arg(info, 0, "unary");
  return wrap(info.Env(), ts::unary(unary_op(n, n.c_str()), tensor_arg(info, 1, n.c_str())));
}

// unaryBackward(name, dout, x, out?) -> dinp
TS_NAPI(unaryBackward) {
  std::string n = string_arg(info, 0, "unaryBackward");
  const char* op = n.c_str();
  return wrap(info.Env(), ts::unary_backward(unary_op(n, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op),
                                             optional_tensor_arg(info, 3, op)));
}

// binary(name, a, b)
TS_NAPI(binary) {
  std::string n = string_arg(info, 0, "binary");
  const char* op = n.c_str();
  return wrap(info.Env(), ts::binary(binary_op(n, op), tensor_arg(info, 1, op), tensor_arg(info, 2, op)));
}

// binaryScalar(name, a, s, scalarFirst)
TS_NAPI(binaryScalar) {
  std::string n = string_arg(info, 0, "binaryScalar");
  const char* op = n.c_str();
  return wrap(info.Env(), ts::binary_scalar(binary_op(n, op), tensor_arg(info, 1, op), number_arg(info, 2, op),
                                            bool_arg(info, 3, op)));
}

// reduce(name, x, axes, keepDim)
TS_NAPI(reduce) {
  std::string n = string_arg(info, 0, "reduce");
  const char* op = n.c_str();
  return wrap(info.Env(), ts::reduce(reduce_op(n, op), tensor_arg(info, 1, op), ints_arg(info, 2, op),
                                     bool_arg(info, 3, op)));
}

TS_NAPI(sumTo) { return wrap(info.Env(), ts::sum_to(tensor_arg(info, 0, "sum_to"), shape_arg(info, 1, "sum_to"))); }

TS_NAPI(matmul) {
  return wrap(info.Env(), ts::matmul(tensor_arg(info, 0, "matmul"), tensor_arg(info, 1, "matmul")));
}
