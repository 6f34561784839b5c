// Shared pieces of the command-line tools: version, --bind-dim parsing, and
// the one place where an error Status becomes a message and exit code 1.
#pragma once

#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "compiler/status.h"

namespace amp::cli {

inline constexpr const char* kVersion = "0.1.0";

inline StatusOr<std::map<std::string, int64_t>> ParseDimBindings(
    const std::vector<std::string>& specs) {
  std::map<std::string, int64_t> out;
  for (const auto& s : specs) {
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
      return InvalidArgument("--bind-dim expects NAME=VALUE, got '", s, "'");
    try {
      size_t used = 0;
      long long v = std::stoll(s.substr(eq + 1), &used);
      if (used != s.size() - eq - 1 || v < 0) throw std::invalid_argument("bad");
      out[s.substr(0, eq)] = v;
    } catch (const std::exception&) {
      return InvalidArgument("--bind-dim value in '", s, "' is not a non-negative integer");
    }
  }
  return out;
}

// Runs `body`; prints "<tool>: error: <message>" and returns 1 on failure.
inline int RunMain(const char* tool, const std::function<Status()>& body) {
  try {
    Status st = body();
    if (st.ok()) return 0;
    std::fprintf(stderr, "%s: error: %s\n", tool, st.message().c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", tool);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
  }
  return 1;
}

}  // namespace amp::cli
