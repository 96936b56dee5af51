#include "core/base64url.h"

#include <openssl/evp.h>

#include <limits>

namespace sigil {
namespace {

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// `text` is padded standard base64 whose characters were already checked.
Result<Bytes> DecodePadded(std::string_view text, size_t padding) {
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return InvalidArgumentError("base64 input is too long");
  }
  Bytes out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return OpenSSLError(Code::kInvalidArgument, "decoding base64");
  // EVP_DecodeBlock counts the zero bytes the padding stands for.
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

}  // namespace

std::string Base64Encode(std::span<const uint8_t> data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  if (data.empty()) return out;
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<Bytes> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return InvalidArgumentError("base64 length " + std::to_string(text.size()) +
                                " is not a multiple of 4");
  }
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  for (size_t i = 0; i + padding < text.size(); ++i) {
    if (!IsBase64Char(text[i])) {
      return InvalidArgumentError("invalid base64 character at offset " + std::to_string(i));
    }
  }
  return DecodePadded(text, padding);
}

std::string Base64UrlEncode(std::span<const uint8_t> data) {
  std::string out = Base64Encode(data);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

Result<Bytes> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) {
    return InvalidArgumentError("base64url length " + std::to_string(text.size()) +
                                " cannot encode whole bytes");
  }
  std::string padded(text);
  for (size_t i = 0; i < padded.size(); ++i) {
    char& c = padded[i];
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || !IsBase64Char(c)) {
      return InvalidArgumentError("invalid base64url character '" + std::string(1, c) +
                                  "' at offset " + std::to_string(i));
    }
  }
  const size_t padding = (4 - padded.size() % 4) % 4;
  padded.append(padding, '=');
  return DecodePadded(padded, padding);
}

}  // namespace sigil
