// Status and StatusOr (the public amp/status.h) with what amp's own code
// builds them with: StrCat, the InvalidArgument/NotFound/... makers, the
// AMP_RETURN_IF_ERROR / AMP_ASSIGN_OR_RETURN macros and AMP_CHECK. Library
// code never exits or aborts on bad input; it returns a Status whose message
// names the problem (and the node, where there is one). The CLI maps it to one
// line on stderr and exit code 1.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "amp/status.h"  // Status, StatusCode, StatusOr

namespace amp {

namespace internal {
inline void AppendAll(std::ostringstream&) {}
template <typename T, typename... Rest>
void AppendAll(std::ostringstream& os, const T& first, const Rest&... rest) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(first))
      os << "nan";  // not "-nan": the sign of a NaN means nothing to a reader
    else
      os << first;
  } else {
    os << first;
  }
  AppendAll(os, rest...);
}
}  // namespace internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::ostringstream os;
  internal::AppendAll(os, args...);
  return os.str();
}

template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return Status(StatusCode::kInvalidArgument, StrCat(args...));
}
template <typename... Args>
Status Unimplemented(const Args&... args) {
  return Status(StatusCode::kUnimplemented, StrCat(args...));
}
template <typename... Args>
Status NotFound(const Args&... args) {
  return Status(StatusCode::kNotFound, StrCat(args...));
}
template <typename... Args>
Status IoError(const Args&... args) {
  return Status(StatusCode::kIoError, StrCat(args...));
}
template <typename... Args>
Status Internal(const Args&... args) {
  return Status(StatusCode::kInternal, StrCat(args...));
}

// Internal invariant: a broken one is an amp bug, reported with file and line.
[[noreturn]] inline void CheckFailed(const char* file, int line, const char* cond) {
  std::fprintf(stderr, "amp internal error: %s:%d: check failed: %s\n", file, line, cond);
  std::abort();
}

}  // namespace amp

#define AMP_CONCAT_INNER(a, b) a##b
#define AMP_CONCAT(a, b) AMP_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` failed.
#define AMP_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::amp::Status amp_status_ = (expr);        \
    if (!amp_status_.ok()) return amp_status_; \
  } while (0)

#define AMP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// `AMP_ASSIGN_OR_RETURN(auto x, MaybeX());`
#define AMP_ASSIGN_OR_RETURN(lhs, expr) \
  AMP_ASSIGN_OR_RETURN_IMPL(AMP_CONCAT(amp_statusor_, __LINE__), lhs, expr)

#define AMP_CHECK(cond)                                         \
  do {                                                          \
    if (!(cond)) ::amp::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (0)
