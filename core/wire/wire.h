// Framing for agent <-> server messages: every body travels in a verified Envelope.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <span>
#include <string>

#include "core/openssl_util.h"
#include "core/status.h"
#include "core/wire/messages_generated.h"

namespace sigil::wire {

// Finishes `builder` with an Envelope around `body` and returns the bytes to send.
template <typename T>
Bytes FinishMessage(flatbuffers::FlatBufferBuilder& builder, flatbuffers::Offset<T> body) {
  auto envelope = CreateEnvelope(builder, BodyTraits<T>::enum_value, body.Union());
  builder.Finish(envelope, EnvelopeIdentifier());
  const uint8_t* data = builder.GetBufferPointer();
  return Bytes(data, data + builder.GetSize());
}

// Checks `bytes` before anything reads them: the identifier and every offset and length;
// for an answer that may carry one of several bodies (the caller switches on body_type()).
Result<const Envelope*> VerifiedEnvelope(std::span<const uint8_t> bytes);

// Checks `bytes` before anything reads them: the identifier, every offset and length (the
// flatbuffers verifier), and that the body is a T. InvalidArgument names what was wrong.
// The returned pointer points into `bytes`.
Status VerifyEnvelope(std::span<const uint8_t> bytes, Body expected);

template <typename T>
Result<const T*> VerifiedMessage(std::span<const uint8_t> bytes) {
  SIGIL_RETURN_IF_ERROR(VerifyEnvelope(bytes, BodyTraits<T>::enum_value));
  return GetEnvelope(bytes.data())->body_as<T>();
}

// Bytes of a flatbuffers vector, empty when the field is absent.
inline std::span<const uint8_t> BytesOf(const flatbuffers::Vector<uint8_t>* vector) {
  if (vector == nullptr) return {};
  return {vector->data(), vector->size()};
}

inline std::string StringOf(const flatbuffers::String* string) {
  return string == nullptr ? std::string() : string->str();
}

}  // namespace sigil::wire
