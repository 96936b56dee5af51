#include "core/call_metrics.h"

namespace sigil {

std::string_view SpireStatusName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kCancelled:
      return "Canceled";
    case Code::kUnknown:
      return "Unknown";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kDeadlineExceeded:
      return "DeadlineExceeded";
    case Code::kNotFound:
      return "NotFound";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kPermissionDenied:
      return "PermissionDenied";
    case Code::kResourceExhausted:
      return "ResourceExhausted";
    case Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Code::kAborted:
      return "Aborted";
    case Code::kOutOfRange:
      return "OutOfRange";
    case Code::kUnimplemented:
      return "Unimplemented";
    case Code::kInternal:
      return "Internal";
    case Code::kUnavailable:
      return "Unavailable";
    case Code::kDataLoss:
      return "DataLoss";
    case Code::kUnauthenticated:
      return "Unauthenticated";
  }
  return "Unknown";
}

CallCounter::CallCounter(MetricsRegistry* registry, std::string name, std::string help)
    : registry_(registry), name_(std::move(name)), help_(std::move(help)) {}

const CallCounter::OfStatus* CallCounter::For(Code code) {
  const auto index = static_cast<size_t>(code);
  if (index >= kCodes) return For(Code::kUnknown);
  if (const OfStatus* known = of_status_[index].load(std::memory_order_acquire)) return known;
  std::lock_guard lock(registering_);
  if (const OfStatus* known = of_status_[index].load(std::memory_order_acquire)) return known;
  const MetricsRegistry::Labels labels = {{"status", std::string(SpireStatusName(code))}};
  // From a tenth of a millisecond (a cached answer) to 10 s (a long poll, a slow token).
  storage_[index] = {
      &registry_->GetCounter(name_, help_, labels),
      &registry_->GetHistogram(name_ + "_elapsed_time", help_ + ": elapsed time in milliseconds",
                               Histogram::ExponentialBounds(0.1, 10'000), labels)};
  of_status_[index].store(&storage_[index], std::memory_order_release);
  return &storage_[index];
}

void CallCounter::Record(Code code, std::chrono::steady_clock::duration elapsed) {
  if (registry_ == nullptr) return;
  const OfStatus* metrics = For(code);
  metrics->calls->Add();
  metrics->elapsed_ms->Observe(std::chrono::duration<double, std::milli>(elapsed).count());
}

}  // namespace sigil
