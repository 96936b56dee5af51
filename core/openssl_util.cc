#include "core/openssl_util.h"

#include <openssl/err.h>

namespace sigil {

Status OpenSSLError(Code code, std::string_view what) {
  std::string message(what);
  bool first = true;
  unsigned long err;  // NOLINT(google-runtime-int): OpenSSL's type
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    // Keep only "library::reason"; the numeric prefix helps nobody reading a log line.
    std::string_view text(buf);
    if (auto pos = text.find(':', text.find(':') + 1); pos != std::string_view::npos) {
      text.remove_prefix(pos + 1);
    }
    message += first ? ": " : "; ";
    message += text;
    first = false;
  }
  return Status(code, std::move(message));
}

void ClearOpenSSLErrors() { ERR_clear_error(); }

Result<Bytes> EcdsaDerToRaw(std::span<const uint8_t> der, size_t field_size) {
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != der.data() + der.size()) {
    return OpenSSLError(Code::kInvalidArgument, "ECDSA signature is not valid DER");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_num_bytes(r) > static_cast<int>(field_size) ||
      BN_num_bytes(s) > static_cast<int>(field_size)) {
    return InvalidArgumentError("ECDSA signature component is longer than the curve's field size " +
                                std::to_string(field_size));
  }
  Bytes raw(2 * field_size);
  if (BN_bn2binpad(r, raw.data(), static_cast<int>(field_size)) < 0 ||
      BN_bn2binpad(s, raw.data() + field_size, static_cast<int>(field_size)) < 0) {
    return OpenSSLError(Code::kInternal, "encoding ECDSA signature as r||s");
  }
  return raw;
}

Result<Bytes> EcdsaRawToDer(std::span<const uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return InvalidArgumentError("raw ECDSA signature must be r||s of equal halves, got " +
                                std::to_string(raw.size()) + " bytes");
  }
  const size_t half = raw.size() / 2;
  BignumPtr r(BN_bin2bn(raw.data(), static_cast<int>(half), nullptr));
  BignumPtr s(BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return OpenSSLError(Code::kInternal, "building ECDSA signature");
  }
  r.release();  // owned by sig now
  s.release();
  unsigned char* out = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &out);
  if (len <= 0) return OpenSSLError(Code::kInternal, "DER-encoding ECDSA signature");
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

Result<Bytes> PublicKeyToDer(EVP_PKEY* key) {
  unsigned char* out = nullptr;
  int len = i2d_PUBKEY(key, &out);
  if (len <= 0) return OpenSSLError(Code::kInvalidArgument, "DER-encoding public key");
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

Result<EvpPkeyPtr> PublicKeyFromDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (!key || p != der.data() + der.size()) {
    return OpenSSLError(Code::kInvalidArgument, "public key is not a valid SubjectPublicKeyInfo");
  }
  return key;
}

}  // namespace sigil
