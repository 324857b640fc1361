// Cross-backend table: elementwise, broadcasting, reductions, matmul, copies/casts.
#include "op_table.h"

using namespace ts;
using optable::input;

namespace {
const UnaryOp kUnary[] = {UnaryOp::Neg,  UnaryOp::Exp,      UnaryOp::Tanh,   UnaryOp::Sigmoid, UnaryOp::Relu,
                          UnaryOp::Silu, UnaryOp::Gelu,     UnaryOp::GeluTanh, UnaryOp::Square, UnaryOp::Abs,
                          UnaryOp::Sin,  UnaryOp::Cos};
struct Reg {
  Reg() {
    for (UnaryOp op : kUnary)
      for (bool strided : {false, true}) {
        optable::table().push_back({OpKind::Unary, unary_name(op), std::string("5x7x13") + (strided ? ",strided" : ""),
                                    [op, strided](Device d) -> std::vector<Tensor> {
                                      Tensor x = input({5, 7, 13}, 11, d, strided);
                                      Tensor g = input({5, 7, 13}, 12, d);
                                      Tensor y = unary(op, x);
                                      return {y, unary_backward(op, g, x, y)};
                                    },
                                    1e-12});
      }
    // Transcendental ops on their SIMD path: 70001 values (several thread chunks and a
    // ragged tail) spread over [-24, 24] (exp's range reduction, tanh's two branches,
    // saturated sigmoids), backward without the saved output (recomputed in-kernel).
    for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Gelu, UnaryOp::GeluTanh})
      optable::table().push_back({OpKind::Unary, unary_name(op), std::string("70001,wide,no saved output"),
                                  [op](Device d) -> std::vector<Tensor> {
                                    Tensor x = input({70001}, 13, d, false, 8);
                                    Tensor g = input({70001}, 14, d);
                                    return {unary(op, x), unary_backward(op, g, x, Tensor())};
                                  },
                                  1e-12});
    // log / sqrt / rsqrt on positive inputs
    for (UnaryOp op : {UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Rsqrt})
      optable::table().push_back({OpKind::Unary, unary_name(op), "13x11,positive", [op](Device d) -> std::vector<Tensor> {
                                    Tensor x = unary(UnaryOp::Exp, input({13, 11}, 21, d));
                                    Tensor g = input({13, 11}, 22, d);
                                    Tensor y = unary(op, x);
                                    return {y, unary_backward(op, g, x, y)};
                                  }, 1e-12});
    const BinaryOp kBin[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum};
    // The last two: one long row split into pieces over threads (same shapes collapse to
    // one row; 70001 is not a multiple of the piece), and long broadcast rows.
    const Shape shapes[][2] = {{{5, 7, 13}, {5, 7, 13}}, {{5, 7, 13}, {7, 1}}, {{1, 13}, {5, 7, 1}}, {{2, 3, 4, 5}, {5}},
                               {{7, 70001}, {7, 70001}}, {{3, 70001}, {70001}}};
    for (BinaryOp op : kBin)
      for (auto& sh : shapes)
        for (bool strided : {false, true}) {
          Shape a = sh[0], b = sh[1];
          optable::table().push_back({OpKind::Binary, binary_name(op), shape_str(a) + "," + shape_str(b) + (strided ? ",strided" : ""),
                                      [op, a, b, strided](Device d) -> std::vector<Tensor> {
                                        Tensor x = input(a, 31, d, strided);
                                        Tensor y = input(b, 32, d, false, 1, op == BinaryOp::Div ? 4.0f : 0.0f);
                                        return {binary(op, x, y), binary_scalar(op, x, 1.5, false),
                                                binary_scalar(op, x, 2.5, true)};
                                      },
                                      1e-12});
        }
    const std::vector<int64_t> axes[] = {{}, {0}, {1}, {2}, {0, 2}, {1, 2}};
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min})
      for (auto& ax : axes)
        for (bool strided : {false, true}) {
          std::string p = "5x7x13,axes=" + shape_str(ax) + (strided ? ",strided" : "");
          optable::table().push_back({OpKind::Reduce, op == ReduceOp::Sum ? "sum" : op == ReduceOp::Mean ? "mean" : op == ReduceOp::Max ? "max" : "min",
                                      p, [op, ax, strided](Device d) -> std::vector<Tensor> {
                                        Tensor x = input({5, 7, 13}, 41, d, strided);
                                        return {reduce(op, x, ax, false), reduce(op, x, ax, true)};
                                      },
                                      1e-12});
        }
    // Rows on each reduction path: one warp per row (n <= 1024, many rows), one block per
    // row, and a few long rows split over blocks whose partials are added in order.
    struct RowCase {
      Shape s;
      const char* path;
    };
    const RowCase rows[] = {{{2000, 37}, "warp rows"}, {{40, 3001}, "block rows"}, {{3, 100003}, "split rows"}};
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min})
      for (const RowCase& rc : rows) {
        Shape s = rc.s;
        optable::table().push_back({OpKind::Reduce,
                                    op == ReduceOp::Sum ? "sum" : op == ReduceOp::Mean ? "mean" : op == ReduceOp::Max ? "max" : "min",
                                    shape_str(s) + ",axes=[1]," + rc.path, [op, s](Device d) -> std::vector<Tensor> {
                                      return {reduce(op, input(s, 42, d, false, 1, 0.25f), {1}, false)};
                                    },
                                    1e-12});
      }
    const int64_t mm[][3] = {{1, 1, 1}, {5, 7, 13}, {64, 96, 128}, {130, 33, 257}};
    for (auto& s : mm)
      for (int variant = 0; variant < 3; ++variant) {
        int64_t M = s[0], K = s[1], N = s[2];
        const char* vn[] = {"plain", "a^T view", "batched+broadcast"};
        optable::table().push_back({OpKind::Matmul, "matmul", "M=" + std::to_string(M) + ",K=" + std::to_string(K) + ",N=" + std::to_string(N) + "," + vn[variant],
                                    [M, K, N, variant](Device d) -> std::vector<Tensor> {
                                      if (variant == 0) return {matmul(input({M, K}, 51, d), input({K, N}, 52, d))};
                                      if (variant == 1) return {matmul(input({K, M}, 51, d).transpose(0, 1), input({K, N}, 52, d))};
                                      return {matmul(input({3, 1, M, K}, 51, d), input({2, K, N}, 52, d))};
                                    },
                                    1e-10});
      }
    // Operands that are views at odd offsets inside larger tensors (pointers 4-byte
    // aligned only, leading dims and batch strides not multiples of 4): cuBLASLt must be
    // told their real alignment.
    for (auto& s : mm) {
      int64_t M = s[0], K = s[1], N = s[2];
      optable::table().push_back({OpKind::Matmul, "matmul", "M=" + std::to_string(M) + ",K=" + std::to_string(K) +
                                                                ",N=" + std::to_string(N) + ",offset views",
                                  [M, K, N](Device d) -> std::vector<Tensor> {
                                    Tensor a = input({M + 1, K + 3}, 53, d).slice(0, 1, M + 1).slice(1, 1, K + 1);
                                    Tensor b = input({K, N + 1}, 54, d).slice(1, 1, N + 1);
                                    Tensor bt = input({N + 1, K}, 55, d).slice(0, 1, N + 1).transpose(0, 1);
                                    Tensor ab = input({3, M, K + 1}, 56, d).slice(2, 1, K + 1);
                                    Tensor bb = input({3, K, N + 1}, 57, d).slice(2, 1, N + 1);
                                    return {matmul(a, b), matmul(a, bt), matmul(ab, bb)};
                                  },
                                  1e-10});
    }
    for (DType dt : {DType::BFloat16, DType::Float16, DType::Float64, DType::Int32})
      optable::table().push_back({OpKind::Copy, "cast", std::string("float32->") + dtype_name(dt) + "->float32,strided",
                                  [dt](Device d) -> std::vector<Tensor> {
                                    Tensor x = input({7, 13}, 61, d, true, 3);
                                    return {to_dtype(to_dtype(x, dt), DType::Float32)};
                                  },
                                  1e-14, {DType::Float32, dt}});
    // the other storage dtypes (saturating / truncating casts), both directions strided
    for (DType dt : {DType::Int64, DType::UInt8, DType::Bool})
      optable::table().push_back({OpKind::Copy, "cast", std::string("float32->") + dtype_name(dt) + "->float32,strided",
                                  [dt](Device d) -> std::vector<Tensor> {
                                    Tensor x = input({7, 13}, 62, d, true, 100);  // strided source
                                    Tensor y = to_dtype(x, dt);
                                    Tensor back = Tensor::empty({13, 7}, DType::Float32, d).transpose(0, 1);
                                    copy_(back, y);  // into a strided destination
                                    return {to_dtype(y, DType::Float32), back};
                                  },
                                  1e-14, {DType::Float32, dt}});
    optable::table().push_back({OpKind::Copy, "cast", "bfloat16<->float16<->int32 chains", [](Device d) -> std::vector<Tensor> {
                                  Tensor x = input({5, 11}, 63, d, false, 40);
                                  Tensor h = to_dtype(to_dtype(x, DType::BFloat16), DType::Float16);
                                  Tensor i = to_dtype(to_dtype(h, DType::Int32), DType::BFloat16);
                                  return {to_dtype(h, DType::Float32), to_dtype(i, DType::Float32)};
                                }, 1e-14, {DType::Float32, DType::BFloat16, DType::Float16, DType::Int32}});
    // creation on the device: fills of every dtype, arange, and the Philox draws (the same
    // numbers on every backend for one seed and offset)
    optable::table().push_back({OpKind::Fill, "full/arange", "float32,bfloat16,int32,int64,uint8,bool", [](Device d) -> std::vector<Tensor> {
                                  std::vector<Tensor> r;
                                  for (DType dt : {DType::Float32, DType::BFloat16, DType::Int32, DType::Int64, DType::UInt8, DType::Bool})
                                    r.push_back(to_dtype(full({3, 5}, 2.7, dt, d), DType::Float32));
                                  r.push_back(arange(-3, 5, 0.75, DType::Float32, d));
                                  r.push_back(to_dtype(arange(0, 20, 3, DType::Int64, d), DType::Float32));
                                  return r;
                                }, 0, {DType::Float32, DType::BFloat16, DType::Int32, DType::Int64, DType::UInt8, DType::Bool}});
    optable::table().push_back({OpKind::Random, "rand/randn", "seed=77,offset=5,odd sizes", [](Device d) -> std::vector<Tensor> {
                                  Generator g;
                                  g.seed = 77;
                                  g.offset = 5;
                                  Tensor u = rand({3, 37}, DType::Float32, d, g);
                                  Tensor n = randn({5, 13}, DType::Float32, d, g);
                                  Tensor b = randn({7}, DType::BFloat16, d, g);
                                  return {u, n, to_dtype(b, DType::Float32)};
                                }, 1e-14});
    optable::table().push_back({OpKind::Copy, "cat", "axis=1,strided", [](Device d) -> std::vector<Tensor> {
                                  return {cat({input({3, 5, 2}, 71, d, true), input({3, 1, 2}, 72, d)}, 1)};
                                }, 0});
    optable::table().push_back({OpKind::Copy, "contiguous", "permuted 4x5x6", [](Device d) -> std::vector<Tensor> {
                                  return {input({4, 5, 6}, 81, d).permute({2, 0, 1}).contiguous()};
                                }, 0});
  }
} reg;
}  // namespace

int main(int argc, char** argv) { return optable::run(argc, argv); }
