// Status and Result<T>: the one error type of Sigil.
//
// Every fallible call returns a Status, or a Result<T> holding either a value or a non-OK
// Status; no exception crosses a library boundary. A Status carries a code (numbered as
// gRPC's, so the Workload API and the agent API can hand it to clients unchanged), a message
// that names what was wrong, and context frames added as the error travels up
// ("while loading config server.yaml").
//
// Thread safety: Status and Result are values; distinct objects may be used from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sigil {

// Same numbers as grpc::StatusCode / google.rpc.Code.
enum class Code : int {
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

// "INVALID_ARGUMENT", as gRPC spells the code.
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message);

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::vector<std::string>& context() const { return context_; }

  // Adds an outer frame ("while signing CSR for entry 42"). No effect on an OK status.
  Status& AddContext(std::string frame) &;
  Status&& AddContext(std::string frame) &&;

  // "INVALID_ARGUMENT: trust domain has an upper-case letter 'A' (while parsing -spiffeID)"
  std::string ToString() const;
  // The same without the code name: what crosses the wire beside a numeric code.
  std::string MessageWithContext() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
  std::vector<std::string> context_;  // innermost first
};

// Constructors for the common codes, so call sites read as the error they report.
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status UnavailableError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status DeadlineExceededError(std::string message);
Status UnauthenticatedError(std::string message);
Status DataLossError(std::string message);
Status CancelledError(std::string message);

// Either a T or a non-OK Status. Written here because g++ 12 has no std::expected and none
// of the project's libraries offers one.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      v_ = Status(Code::kInternal, "Result constructed from an OK status without a value");
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }

  // The error, or OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // Precondition: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sigil

#define SIGIL_STATUS_CONCAT_INNER_(a, b) a##b
#define SIGIL_STATUS_CONCAT_(a, b) SIGIL_STATUS_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define SIGIL_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::sigil::Status sigil_status_ = (expr);          \
    if (!sigil_status_.ok()) return sigil_status_;   \
  } while (false)

// `SIGIL_ASSIGN_OR_RETURN(auto key, store.FindKey(label));`
#define SIGIL_ASSIGN_OR_RETURN(lhs, expr) \
  SIGIL_ASSIGN_OR_RETURN_IMPL_(SIGIL_STATUS_CONCAT_(sigil_result_, __LINE__), lhs, expr)
#define SIGIL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
