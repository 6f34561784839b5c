// Shared pieces of the command-line tools: version, --bind-dim parsing, and
// the one place where an error Status becomes a message and exit code 1.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "amp/version.h"
#include "compiler/status.h"
#include "passes/compile.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"
#include "passes/registry.h"

namespace amp::cli {

inline constexpr const char* kVersion = AMP_VERSION;

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

// The precision flags that amp-compile and amp-opt share.
struct PrecisionFlags {
  std::string opt_level = "O1";
  std::string dtype = "fp16";
  std::vector<std::string> fp32_ops, half_ops;
  std::string fp32_nodes, policy_file;
  bool keep_batchnorm_fp32 = false;

  void Add(CLI::App& app) {
    app.add_option(
           "--opt-level", opt_level,
           "O0: no precision change; O1: op lists (default); O2: all half but the fp32 list; "
           "O3: pure half (for comparison only)")
        ->check(CLI::IsMember({"O0", "O1", "O2", "O3"}));
    app.add_option("--dtype", dtype, "half type: fp16 (default) or bf16")
        ->check(CLI::IsMember({"fp16", "bf16"}));
    app.add_option("--fp32-ops", fp32_ops, "ops to keep in FP32, e.g. --fp32-ops Add,Mul")
        ->delimiter(',');
    app.add_option("--half-ops", half_ops, "ops to run in half, e.g. --half-ops Softmax")
        ->delimiter(',');
    app.add_option("--fp32-nodes", fp32_nodes,
                   "keep in FP32 the nodes whose name (or an output name) matches this regex");
    app.add_option("--policy", policy_file, "JSON policy file (same fields as the flags)");
    app.add_flag("--keep-batchnorm-fp32", keep_batchnorm_fp32,
                 "run BatchNormalization entirely in FP32");
  }

  // The flags into the compiler's options (its precision fields).
  void Fill(CompileOptions& o) const {
    o.opt_level = opt_level;
    o.dtype = dtype;
    o.fp32_ops = fp32_ops;
    o.half_ops = half_ops;
    o.fp32_nodes = fp32_nodes;
    o.policy_file = policy_file;
    o.keep_batchnorm_fp32 = keep_batchnorm_fp32;
  }
  // Flags first, then the policy file on top (it names its own fields).
  StatusOr<PrecisionPolicy> Build() const {
    CompileOptions o;
    Fill(o);
    return PolicyFor(o);
  }
};

// --print-after and --disable-pass, shared by amp-compile and amp-opt.
struct PipelineDebugFlags {
  std::vector<std::string> print_after, disabled;

  void Add(CLI::App& app) {
    app.add_option("--print-after", print_after,
                   "print the IR (to stderr) after this pass, or after every pass with 'all' "
                   "(repeatable)");
    app.add_option("--disable-pass", disabled, "do not run this pass (repeatable; debugging)");
  }

  // Names checked against the pass registry.
  StatusOr<PipelineDebug> Build() const {
    PipelineDebug d;
    for (const std::string& n : print_after) {
      if (n != "all") AMP_RETURN_IF_ERROR(CheckPassName(n).WithContext("--print-after"));
      d.print_after.insert(n);
    }
    for (const std::string& n : disabled) {
      AMP_RETURN_IF_ERROR(CheckPassName(n).WithContext("--disable-pass"));
      d.disabled.insert(n);
    }
    return d;
  }
};

// An error message as one printable line: line breaks become "; " and other
// control bytes (a NUL in a name read from a file) are written as \xNN.
inline std::string OneLine(const std::string& message) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(message[i]);
    if (c == '\n' || c == '\r') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      if (!out.empty() && out.back() != ';' && i + 1 < message.size()) out += "; ";
      while (i + 1 < message.size() && (message[i + 1] == ' ' || message[i + 1] == '\n'))
        ++i;  // the next line's indentation
    } else if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

// Runs `body`; prints "<tool>: error: <message>" (one line) and returns 1 on
// failure.
inline int RunMain(const char* tool, const std::function<Status()>& body) {
  try {
    Status st = body();
    if (st.ok()) return 0;
    std::fprintf(stderr, "%s: error: %s\n", tool, OneLine(st.message()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: out of memory\n", tool);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
  }
  return 1;
}

}  // namespace amp::cli
