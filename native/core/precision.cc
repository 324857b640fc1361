#include "precision.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace ts {
namespace {
MatmulPrecision initial() {
  const char* e = std::getenv("TESSERA_MATMUL_PRECISION");
  if (e && std::strcmp(e, "high") == 0) return MatmulPrecision::High;
  if (e && std::strcmp(e, "medium") == 0) return MatmulPrecision::Medium;
  return MatmulPrecision::Highest;
}
std::atomic<int> g_precision{static_cast<int>(initial())};
}  // namespace

MatmulPrecision float32_matmul_precision() { return static_cast<MatmulPrecision>(g_precision.load()); }
void set_float32_matmul_precision(MatmulPrecision p) { g_precision = static_cast<int>(p); }
const char* matmul_precision_name(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::Highest: return "highest";
    case MatmulPrecision::High: return "high";
    case MatmulPrecision::Medium: return "medium";
  }
  return "highest";
}

}  // namespace ts
