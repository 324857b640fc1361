// tessera C++ tests: a tiny harness (no dependencies), so the core can be tested on
// any machine with a compiler, Node or not.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace check {
struct Case {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<Case>& cases() {
  static std::vector<Case> c;
  return c;
}
inline int& failures() {
  static int f = 0;
  return f;
}
struct Reg {
  Reg(const char* n, std::function<void()> f) { cases().push_back({n, std::move(f)}); }
};
inline int run_all(int argc, char** argv) {
  int ran = 0, failed_cases = 0;
  for (auto& c : cases()) {
    if (argc > 1 && std::string(c.name).find(argv[1]) == std::string::npos) continue;
    int before = failures();
    try {
      c.fn();
    } catch (const std::exception& e) {
      std::printf("  exception: %s\n", e.what());
      ++failures();
    }
    ++ran;
    bool ok = failures() == before;
    if (!ok) ++failed_cases;
    std::printf("%s %s\n", ok ? "[ OK ]" : "[FAIL]", c.name);
  }
  std::printf("%d passed, %d failed\n", ran - failed_cases, failed_cases);
  return failed_cases ? 1 : 0;
}
}  // namespace check

#define TEST(name) \
  static void name(); \
  static check::Reg reg_##name(#name, name); \
  static void name()
#define EXPECT(cond)                                                              \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::printf("  %s:%d: expected %s\n", __FILE__, __LINE__, #cond);         \
      ++check::failures();                                                        \
    }                                                                             \
  } while (0)
#define EXPECT_NEAR(a, b, tol)                                                                          \
  do {                                                                                                  \
    double va_ = (a), vb_ = (b);                                                                        \
    if (!(std::fabs(va_ - vb_) <= (tol))) {                                                             \
      std::printf("  %s:%d: %s = %g, %s = %g (tol %g)\n", __FILE__, __LINE__, #a, va_, #b, vb_, (double)(tol)); \
      ++check::failures();                                                                              \
    }                                                                                                   \
  } while (0)
#define EXPECT_THROWS(stmt, fragment)                                                             \
  do {                                                                                            \
    bool threw_ = false;                                                                          \
    try {                                                                                         \
      stmt;                                                                                       \
    } catch (const std::exception& e_) {                                                          \
      threw_ = true;                                                                              \
      if (std::string(e_.what()).find(fragment) == std::string::npos) {                           \
        std::printf("  %s:%d: message '%s' lacks '%s'\n", __FILE__, __LINE__, e_.what(), fragment); \
        ++check::failures();                                                                      \
      }                                                                                           \
    }                                                                                             \
    if (!threw_) {                                                                                \
      std::printf("  %s:%d: expected %s to throw\n", __FILE__, __LINE__, #stmt);                   \
      ++check::failures();                                                                        \
    }                                                                                             \
  } while (0)
#define TEST_MAIN \
  int main(int argc, char** argv) { return check::run_all(argc, argv); }
