// amp's error type, part of the public API: every fallible call returns a
// Status (or a StatusOr<T>, a value or the Status that explains why there is
// none). amp never exits, aborts or throws on bad input; the message names the
// problem (and the node, the option or the file, where there is one).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace amp {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // malformed model or flag
  kUnimplemented,    // valid ONNX that amp does not support (yet)
  kNotFound,         // a file or name that does not exist
  kIoError,          // the file system failed
  kInternal,         // an amp bug
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("while importing node 'x': ") to an error; no-op on OK.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status)                          // NOLINT: implicit by design
      : status_(status.ok() ? Status(StatusCode::kInternal,
                                     "StatusOr constructed from an OK status without a value")
                            : std::move(status)) {}
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace amp
