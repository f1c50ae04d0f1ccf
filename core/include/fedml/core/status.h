// Status and Result<T>: the error vocabulary of fedml-cpp.
//
// In federated learning timeouts, dropped peers, malformed frames and bad configs are normal
// control flow, so run-time failures travel as values, not exceptions. The codes map one to one
// onto gRPC's status codes so that a remote failure keeps its meaning across the wire.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace fedml {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

/// Name of a code as gRPC spells it ("INVALID_ARGUMENT").
const char* StatusCodeName(StatusCode code);

/// A cheap value: a code and a human-readable message that names the problem and what is
/// allowed. Thread-compatible (copy freely, do not mutate one object from two threads).
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;
  /// A copy with `context + ": "` put before the message (same code).
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Either a value or a non-OK Status. Accessing value() of an error is a programming error
/// (asserted in debug builds).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace fedml

/// Returns early from the enclosing function with the status of `expr` if it is not OK.
#define FEDML_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::fedml::Status fedml_status_ = (expr);        \
    if (!fedml_status_.ok()) return fedml_status_; \
  } while (0)

#define FEDML_CONCAT_INNER_(a, b) a##b
#define FEDML_CONCAT_(a, b) FEDML_CONCAT_INNER_(a, b)
/// `FEDML_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its status.
#define FEDML_ASSIGN_OR_RETURN(lhs, expr) \
  FEDML_ASSIGN_OR_RETURN_IMPL_(FEDML_CONCAT_(fedml_result_, __LINE__), lhs, expr)
// `tmp` and `lhs` name declarations, which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define FEDML_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
