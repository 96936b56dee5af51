// Helpers for the certificate and token tests: keys, CSRs made with OpenSSL alone (so the code
// under test never vouches for its own input), and readers of certificate fields through
// OpenSSL's parser.
#pragma once

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "core/openssl_util.h"
#include "core/signer.h"
#include "hw/soft_key_store.h"

namespace sigil::testing {

// "P-256", "P-384", "P-521", "RSA-1024", "RSA-2048", "RSA-3072", "Ed25519".
inline EvpPkeyPtr NewKey(const std::string& kind) {
  if (kind == "P-256" || kind == "P-384" || kind == "P-521") return EvpPkeyPtr(EVP_EC_gen(kind.c_str()));
  if (kind.rfind("RSA-", 0) == 0) return EvpPkeyPtr(EVP_RSA_gen(std::stoul(kind.substr(4))));
  if (kind == "Ed25519") return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  return nullptr;
}

// A soft Signer; `private_key` (optional) receives a reference to its private key.
inline std::shared_ptr<Signer> SoftSigner(KeyType type, EvpPkeyPtr* private_key = nullptr) {
  auto key = hw::GenerateSoftKey(type);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  if (!key.ok()) return nullptr;
  if (private_key != nullptr) {
    EVP_PKEY_up_ref(key->get());
    private_key->reset(key->get());
  }
  auto signer = hw::MakeSoftSigner(std::move(*key));
  EXPECT_TRUE(signer.ok()) << signer.status().ToString();
  return signer.ok() ? *signer : nullptr;
}

// A PKCS#10 CSR built and signed by OpenSSL directly, with a subject and a URI SAN the server
// must ignore. `md` null for keys that sign without a separate digest (Ed25519).
inline Bytes OpenSslCsr(EVP_PKEY* key, const EVP_MD* md = EVP_sha256(),
                        const std::string& uri_san = "spiffe://attacker.example/admin") {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("csr-subject"), -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key);
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("URI:" + uri_san).c_str());
  sk_X509_EXTENSION_push(exts, san);
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  EXPECT_GT(X509_REQ_sign(req.get(), key, md), 0);
  const int len = i2d_X509_REQ(req.get(), nullptr);
  Bytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  i2d_X509_REQ(req.get(), &p);
  return der;
}

inline std::vector<std::string> SansOfType(X509* cert, int type) {
  std::vector<std::string> out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != type) continue;
    const ASN1_STRING* s = type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

// -1 when absent, else 0 or 1.
inline int ExtensionCritical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  if (index < 0) return -1;
  return X509_EXTENSION_get_critical(X509_get_ext(cert, index));
}

inline std::string NameEntry(const X509_NAME* name, int nid) {
  const int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

inline std::vector<std::string> ExtendedKeyUsages(X509* cert) {
  std::vector<std::string> out;
  std::unique_ptr<EXTENDED_KEY_USAGE, OpenSSLDeleter<EXTENDED_KEY_USAGE_free>> eku(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (!eku) return out;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    out.push_back(OBJ_nid2sn(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i))));
  }
  return out;
}

inline bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// An RSA public key with a random odd modulus and exponent of the given sizes (e = 3 when
// exponent_bits is 2): a key only its encoding matters for, made in microseconds.
inline EvpPkeyPtr RsaPublicKeyOfSizes(int modulus_bits, int exponent_bits) {
  std::unique_ptr<BIGNUM, OpenSSLDeleter<BN_free>> n(BN_new()), e(BN_new());
  EXPECT_EQ(BN_rand(n.get(), modulus_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
  if (exponent_bits == 2) {
    BN_set_word(e.get(), 3);
  } else {
    EXPECT_EQ(BN_rand(e.get(), exponent_bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD), 1);
  }
  OSSL_PARAM_BLD* build = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_N, n.get());
  OSSL_PARAM_BLD_push_BN(build, OSSL_PKEY_PARAM_RSA_E, e.get());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(build);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
  EXPECT_EQ(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(build);
  return EvpPkeyPtr(key);
}

// A CSR for `key` whose signature is filler as long as the key's and smaller than an RSA
// modulus: it never verifies, but a verifier does the whole modular exponentiation first, so
// the CSR costs what a real one with that key would.
inline Bytes CsrWithFillerSignature(EVP_PKEY* key, int signature_nid) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  EXPECT_EQ(X509_REQ_set_pubkey(req.get(), key), 1);
  X509_ALGOR* alg = X509_ALGOR_new();
  X509_ALGOR_set0(alg, OBJ_nid2obj(signature_nid), V_ASN1_UNDEF, nullptr);
  EXPECT_EQ(X509_REQ_set1_signature_algo(req.get(), alg), 1);
  X509_ALGOR_free(alg);
  ASN1_BIT_STRING* signature = ASN1_BIT_STRING_new();
  Bytes filler(static_cast<size_t>(EVP_PKEY_get_size(key)), 0x5a);
  filler[0] = 0x01;
  ASN1_BIT_STRING_set(signature, filler.data(), static_cast<int>(filler.size()));
  X509_REQ_set0_signature(req.get(), signature);
  const int len = i2d_X509_REQ(req.get(), nullptr);
  EXPECT_GT(len, 0);
  Bytes der(static_cast<size_t>(len > 0 ? len : 0));
  unsigned char* p = der.data();
  i2d_X509_REQ(req.get(), &p);
  return der;
}

}  // namespace sigil::testing
