#include "core/wire/wire.h"

#include <string>

namespace sigil::wire {

namespace {
// Bounds what a peer can make the verifier walk; entry sync of 100k entries stays well inside.
constexpr flatbuffers::uoffset_t kMaxDepth = 64;
constexpr flatbuffers::uoffset_t kMaxTables = 16'000'000;
}  // namespace

Result<const Envelope*> VerifiedEnvelope(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) {
    return InvalidArgumentError("message of " + std::to_string(bytes.size()) +
                                " bytes is too short to be a Sigil message");
  }
  if (!flatbuffers::BufferHasIdentifier(bytes.data(), EnvelopeIdentifier())) {
    return InvalidArgumentError(std::string("message does not carry the identifier \"") +
                                EnvelopeIdentifier() + "\"");
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), kMaxDepth, kMaxTables);
  if (!VerifyEnvelopeBuffer(verifier)) {
    return InvalidArgumentError("message is malformed: an offset or length points outside it");
  }
  const Envelope* envelope = GetEnvelope(bytes.data());
  if (envelope->body() == nullptr || envelope->body_type() == Body::NONE) {
    return InvalidArgumentError("message has no body");
  }
  return envelope;
}

Status VerifyEnvelope(std::span<const uint8_t> bytes, Body expected) {
  SIGIL_ASSIGN_OR_RETURN(const Envelope* envelope, VerifiedEnvelope(bytes));
  const Body actual = envelope->body_type();
  if (actual != expected) {
    return InvalidArgumentError(std::string("message carries a ") + EnumNameBody(actual) +
                                " where a " + EnumNameBody(expected) + " was expected");
  }
  return Status::Ok();
}

}  // namespace sigil::wire
