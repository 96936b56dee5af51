#include "core/status.h"

namespace sigil {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kCancelled: return "CANCELLED";
    case Code::kUnknown: return "UNKNOWN";
    case Code::kInvalidArgument: return "INVALID_ARGUMENT";
    case Code::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case Code::kNotFound: return "NOT_FOUND";
    case Code::kAlreadyExists: return "ALREADY_EXISTS";
    case Code::kPermissionDenied: return "PERMISSION_DENIED";
    case Code::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition: return "FAILED_PRECONDITION";
    case Code::kAborted: return "ABORTED";
    case Code::kOutOfRange: return "OUT_OF_RANGE";
    case Code::kUnimplemented: return "UNIMPLEMENTED";
    case Code::kInternal: return "INTERNAL";
    case Code::kUnavailable: return "UNAVAILABLE";
    case Code::kDataLoss: return "DATA_LOSS";
    case Code::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Status::Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

Status& Status::AddContext(std::string frame) & {
  if (!ok()) context_.push_back(std::move(frame));
  return *this;
}

Status&& Status::AddContext(std::string frame) && {
  if (!ok()) context_.push_back(std::move(frame));
  return std::move(*this);
}

std::string Status::ToString() const {
  if (ok()) return std::string(CodeName(code_));
  return std::string(CodeName(code_)) + ": " + MessageWithContext();
}

std::string Status::MessageWithContext() const {
  std::string out = message_;
  if (!context_.empty()) {
    out += " (";
    for (size_t i = 0; i < context_.size(); ++i) {
      if (i > 0) out += "; ";
      out += context_[i];
    }
    out += ")";
  }
  return out;
}

Status InvalidArgumentError(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
Status NotFoundError(std::string m) { return {Code::kNotFound, std::move(m)}; }
Status AlreadyExistsError(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
Status PermissionDeniedError(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
Status ResourceExhaustedError(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
Status FailedPreconditionError(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
Status UnavailableError(std::string m) { return {Code::kUnavailable, std::move(m)}; }
Status UnimplementedError(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
Status InternalError(std::string m) { return {Code::kInternal, std::move(m)}; }
Status DeadlineExceededError(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
Status UnauthenticatedError(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
Status DataLossError(std::string m) { return {Code::kDataLoss, std::move(m)}; }
Status CancelledError(std::string m) { return {Code::kCancelled, std::move(m)}; }

}  // namespace sigil
