// tessera core: errors. Library code throws ts::Error; it never aborts or exits.
// Messages start with the op name and say what was expected and what came:
//   "add: shapes [2, 3] and [4] are not broadcastable"
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ts {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

std::string shape_str(const std::vector<int64_t>& s);  // "[2, 3]"

namespace detail {
inline void cat_args(std::ostringstream&) {}
template <typename T, typename... R>
void cat_args(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  cat_args(os, r...);
}
}  // namespace detail

template <typename... A>
[[noreturn]] void fail(const char* op, const A&... parts) {
  std::ostringstream os;
  os << op << ": ";
  detail::cat_args(os, parts...);
  throw Error(os.str());
}

}  // namespace ts

#define TS_CHECK(cond, op, ...) \
  do {                          \
    if (!(cond)) ::ts::fail(op, __VA_ARGS__); \
  } while (0)
