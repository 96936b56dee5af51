#include "serverd/attestor/tpm_devid_attestor.h"

#include "core/wire/convert.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <cstring>

#include "core/file.h"
#include "core/trust_bundle.h"
#include "hw/tpm_public.h"
#include "hw/tss2_library.h"

namespace sigil::serverd {

namespace {

constexpr size_t kNonceSize = 32;
constexpr size_t kSecretSize = 32;
// Far more than any DevID hierarchy needs, few enough to bound the work an agent can ask for.
constexpr size_t kMaxChainLength = 8;

Result<std::vector<X509Ptr>> LoadCaFiles(const std::vector<std::filesystem::path>& paths,
                                         const std::string& what) {
  std::vector<X509Ptr> cas;
  for (const std::filesystem::path& path : paths) {
    auto pem = ReadWholeFile(path, what);
    if (!pem.ok()) return Status(pem.status().code(), "tpm_devid: " + pem.status().message());
    auto certs = CertsFromPem(*pem);
    if (!certs.ok()) {
      return InvalidArgumentError("tpm_devid: " + what + " " + path.string() + ": " +
                                  certs.status().message());
    }
    for (X509Ptr& cert : *certs) cas.push_back(std::move(cert));
  }
  return cas;
}

Result<X509Ptr> ParseDer(std::span<const uint8_t> der, const std::string& what) {
  const uint8_t* cursor = der.data();
  X509Ptr cert(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
  if (!cert || cursor != der.data() + der.size()) {
    ClearOpenSSLErrors();
    return InvalidArgumentError(what + " is not a DER certificate");
  }
  return cert;
}

std::string CommonName(const X509_NAME* name);

// "subject CN=<leaf's CN>, issuer CN=<its issuer's CN>", each cut to 64 characters: for refusals
// an operator must tie to one host and one CA, while the names are the agent's to choose.
std::string SubjectAndIssuer(X509* leaf) {
  auto cut = [](std::string cn) { return cn.size() > 64 ? cn.substr(0, 64) + "..." : cn; };
  return "subject CN=" + cut(CommonName(X509_get_subject_name(leaf))) +
         ", issuer CN=" + cut(CommonName(X509_get_issuer_name(leaf)));
}

// Verifies `leaf` up to one of `anchors` at `now`, with `intermediates` as untrusted helpers.
// Returns the verified chain, leaf first.
Result<X509StackPtr> VerifyChain(X509* leaf, std::span<const X509Ptr> intermediates,
                                 std::span<const X509Ptr> anchors, TimePoint now,
                                 const std::string& what) {
  X509StorePtr store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx)
    return OpenSSLError(Code::kInternal, "allocating a certificate store");
  for (const X509Ptr& anchor : anchors) X509_STORE_add_cert(store.get(), anchor.get());
  for (const X509Ptr& cert : intermediates) {
    X509_up_ref(cert.get());
    sk_X509_push(untrusted.get(), cert.get());
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return OpenSSLError(Code::kInternal, "starting a certificate check");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, std::chrono::system_clock::to_time_t(now));
  // Every configured CA is a trust anchor, an intermediate as much as a root, as in SPIRE.
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx.get()) != 1) {
    const int error = X509_STORE_CTX_get_error(ctx.get());
    ClearOpenSSLErrors();
    return PermissionDeniedError(what + " does not chain to a configured CA: " +
                                 X509_verify_cert_error_string(error) + " (" +
                                 SubjectAndIssuer(leaf) + ")");
  }
  return X509StackPtr(X509_STORE_CTX_get1_chain(ctx.get()));
}

std::string Sha1Fingerprint(X509* cert) {
  unsigned char* der = nullptr;
  const int size = i2d_X509(cert, &der);
  unsigned char digest[20];
  unsigned int digest_size = 0;
  EVP_Digest(der, static_cast<size_t>(size), digest, &digest_size, EVP_sha1(), nullptr);
  OPENSSL_free(der);
  return HexEncode(std::span<const uint8_t>(digest, digest_size));
}

std::string CommonName(const X509_NAME* name) {
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int size = ASN1_STRING_to_UTF8(&utf8, data);
  if (size < 0) return "";
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(size));
  OPENSSL_free(utf8);
  return cn;
}

bool HasAttributes(const TPMT_PUBLIC& area, TPMA_OBJECT wanted) {
  return (area.objectAttributes & wanted) == wanted;
}

Bytes RandomBytes(size_t size) {
  Bytes out(size);
  if (RAND_bytes(out.data(), static_cast<int>(size)) != 1) std::abort();  // no entropy: no security
  return out;
}

void AppendU16(Bytes& out, size_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void AppendU32(Bytes& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

// KDFa of TPM 2.0 Part 1, 11.4.10.2 (SP 800-108 counter mode with HMAC): the TPM derives the
// credential's keys with it, so the server must derive the same ones.
Result<Bytes> Kdfa(const EVP_MD* md, std::span<const uint8_t> key, std::string_view label,
                   std::span<const uint8_t> context_u, std::span<const uint8_t> context_v,
                   uint32_t bits) {
  const size_t wanted = (bits + 7) / 8;
  Bytes out;
  for (uint32_t counter = 1; out.size() < wanted; ++counter) {
    Bytes input;
    AppendU32(input, counter);
    input.insert(input.end(), label.begin(), label.end());
    input.push_back(0);  // the label is used with its terminating zero
    input.insert(input.end(), context_u.begin(), context_u.end());
    input.insert(input.end(), context_v.begin(), context_v.end());
    AppendU32(input, bits);
    unsigned char block[EVP_MAX_MD_SIZE];
    unsigned int block_size = 0;
    if (HMAC(md, key.data(), static_cast<int>(key.size()), input.data(), input.size(), block,
             &block_size) == nullptr) {
      return OpenSSLError(Code::kInternal, "deriving a credential key");
    }
    out.insert(out.end(), block, block + block_size);
  }
  out.resize(wanted);
  return out;
}

struct MadeCredential {
  Bytes credential_blob;   // TPM2B_ID_OBJECT
  Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET
};

// TPM2_MakeCredential (TPM 2.0 Part 1, 24; Part 3, 12.6), done in software: serverd need not
// have a TPM, and no library the project builds on offers MakeCredential without one (the
// ESAPI command needs a TPM, and OpenSSL knows nothing of TPM credentials). For an RSA EK:
// a random seed, RSA-OAEP encrypted to the EK with the label "IDENTITY"; from the seed, KDFa
// derives an AES key (bound to the AK's name) that encrypts the secret in CFB mode, and an
// HMAC key whose HMAC over the encrypted secret and the AK's name protects its integrity.
// The TPM recovers the secret only when it holds the EK's private key and a loaded object with
// that AK name. Kept whole, longer than a function keeps to: it follows those steps in order, so
// that it reads against the specification.
Result<MadeCredential> MakeCredential(const TPMT_PUBLIC& ek, std::span<const uint8_t> ak_name,
                                      std::span<const uint8_t> secret) {
  const EVP_MD* md = hw::TpmHashDigest(ek.nameAlg);
  if (md == nullptr || ek.nameAlg == TPM2_ALG_SHA1)
    return PermissionDeniedError("the EK's name algorithm is not supported");
  const TPMT_SYM_DEF_OBJECT& symmetric = ek.parameters.rsaDetail.symmetric;
  const EVP_CIPHER* cipher = nullptr;
  if (symmetric.algorithm == TPM2_ALG_AES && symmetric.mode.aes == TPM2_ALG_CFB) {
    if (symmetric.keyBits.aes == 128) cipher = EVP_aes_128_cfb128();
    if (symmetric.keyBits.aes == 256) cipher = EVP_aes_256_cfb128();
  }
  if (cipher == nullptr)
    return PermissionDeniedError("the EK's symmetric algorithm is not AES-128/256-CFB");
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr ek_key, hw::PublicKeyOfTpmPublic(ek));
  const size_t digest_size = static_cast<size_t>(EVP_MD_get_size(md));
  const Bytes seed = RandomBytes(digest_size);

  // The seed, encrypted to the EK.
  EvpPkeyCtxPtr rsa(EVP_PKEY_CTX_new_from_pkey(nullptr, ek_key.get(), nullptr));
  static constexpr char kIdentityLabel[] = "IDENTITY";  // sizeof counts the terminating zero
  void* label = OPENSSL_memdup(kIdentityLabel, sizeof(kIdentityLabel));
  if (!rsa || label == nullptr || EVP_PKEY_encrypt_init(rsa.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(rsa.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(rsa.get(), md) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(rsa.get(), md) != 1 ||
      EVP_PKEY_CTX_set0_rsa_oaep_label(rsa.get(), label, sizeof(kIdentityLabel)) != 1) {
    OPENSSL_free(label);
    return OpenSSLError(Code::kInternal, "preparing the credential seed's encryption to the EK");
  }
  size_t encrypted_size = 0;
  if (EVP_PKEY_encrypt(rsa.get(), nullptr, &encrypted_size, seed.data(), seed.size()) != 1) {
    return OpenSSLError(Code::kInternal, "encrypting the credential seed to the EK");
  }
  Bytes encrypted_seed(encrypted_size);
  if (EVP_PKEY_encrypt(rsa.get(), encrypted_seed.data(), &encrypted_size, seed.data(),
                       seed.size()) != 1) {
    return OpenSSLError(Code::kInternal, "encrypting the credential seed to the EK");
  }
  encrypted_seed.resize(encrypted_size);

  // The secret as a TPM2B_DIGEST, encrypted with the key bound to the AK's name.
  SIGIL_ASSIGN_OR_RETURN(Bytes symmetric_key,
                         Kdfa(md, seed, "STORAGE", ak_name, {}, symmetric.keyBits.aes));
  Bytes plain;
  AppendU16(plain, secret.size());
  plain.insert(plain.end(), secret.begin(), secret.end());
  Bytes encrypted_identity(plain.size());
  {
    const unsigned char iv[16] = {};
    std::unique_ptr<EVP_CIPHER_CTX, OpenSSLDeleter<EVP_CIPHER_CTX_free>> ctx(EVP_CIPHER_CTX_new());
    int out_size = 0;
    int final_size = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, symmetric_key.data(), iv) != 1 ||
        EVP_EncryptUpdate(ctx.get(), encrypted_identity.data(), &out_size, plain.data(),
                          static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), encrypted_identity.data() + out_size, &final_size) != 1) {
      return OpenSSLError(Code::kInternal, "encrypting the credential");
    }
  }
  OPENSSL_cleanse(symmetric_key.data(), symmetric_key.size());

  SIGIL_ASSIGN_OR_RETURN(
      Bytes hmac_key, Kdfa(md, seed, "INTEGRITY", {}, {}, static_cast<uint32_t>(digest_size * 8)));
  Bytes hmac_input = encrypted_identity;
  hmac_input.insert(hmac_input.end(), ak_name.begin(), ak_name.end());
  unsigned char integrity[EVP_MAX_MD_SIZE];
  unsigned int integrity_size = 0;
  if (HMAC(md, hmac_key.data(), static_cast<int>(hmac_key.size()), hmac_input.data(),
           hmac_input.size(), integrity, &integrity_size) == nullptr) {
    return OpenSSLError(Code::kInternal, "computing the credential's integrity HMAC");
  }
  OPENSSL_cleanse(hmac_key.data(), hmac_key.size());

  TPM2B_ID_OBJECT id_object{};
  Bytes credential;
  AppendU16(credential, integrity_size);
  credential.insert(credential.end(), integrity, integrity + integrity_size);
  credential.insert(credential.end(), encrypted_identity.begin(), encrypted_identity.end());
  TPM2B_ENCRYPTED_SECRET encrypted_secret{};
  if (credential.size() > sizeof(id_object.credential) ||
      encrypted_seed.size() > sizeof(encrypted_secret.secret)) {
    return InternalError("the credential does not fit its TPM structure");
  }
  id_object.size = static_cast<UINT16>(credential.size());
  std::memcpy(id_object.credential, credential.data(), credential.size());
  encrypted_secret.size = static_cast<UINT16>(encrypted_seed.size());
  std::memcpy(encrypted_secret.secret, encrypted_seed.data(), encrypted_seed.size());

  MadeCredential made;
  made.credential_blob.resize(sizeof(TPM2B_ID_OBJECT));
  made.encrypted_secret.resize(sizeof(TPM2B_ENCRYPTED_SECRET));
  size_t size = 0;
  hw::Tss2().Tss2_MU_TPM2B_ID_OBJECT_Marshal(&id_object, made.credential_blob.data(),
                                  made.credential_blob.size(), &size);
  made.credential_blob.resize(size);
  size = 0;
  hw::Tss2().Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&encrypted_secret, made.encrypted_secret.data(),
                                         made.encrypted_secret.size(), &size);
  made.encrypted_secret.resize(size);
  return made;
}

// The DevID certificate, its chain to one of `devid_cas`, and its key: a fixedTPM signing key
// whose public half the certificate holds.
struct CheckedDevId {
  std::vector<X509Ptr> chain;  // the DevID certificate first
  X509StackPtr verified;       // from the DevID certificate up to the CA that vouched for it
  TPM2B_PUBLIC devid_public;
  EvpPkeyPtr key;
};
Result<CheckedDevId> CheckDevId(const TpmDevIdEvidence& evidence, const std::vector<X509Ptr>& devid_cas,
                                TimePoint now) {
  if (evidence.devid_chain_der.empty())
    return InvalidArgumentError("tpm_devid: the evidence has no DevID certificate");
  if (evidence.devid_chain_der.size() > kMaxChainLength) {
    return InvalidArgumentError("tpm_devid: the DevID chain has more than " +
                                std::to_string(kMaxChainLength) + " certificates");
  }
  CheckedDevId devid;
  for (size_t i = 0; i < evidence.devid_chain_der.size(); ++i) {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr cert,
                           ParseDer(evidence.devid_chain_der[i],
                                    "tpm_devid: DevID chain certificate " + std::to_string(i)));
    devid.chain.push_back(std::move(cert));
  }
  X509* leaf = devid.chain.front().get();
  SIGIL_ASSIGN_OR_RETURN(devid.verified,
                         VerifyChain(leaf, std::span<const X509Ptr>(devid.chain).subspan(1), devid_cas,
                                     now, "tpm_devid: the DevID certificate"));
  if (X509_check_ca(leaf) != 0)
    return PermissionDeniedError("tpm_devid: the DevID certificate is a CA certificate");
  if (const uint32_t usage = X509_get_key_usage(leaf);
      usage != UINT32_MAX && (usage & KU_DIGITAL_SIGNATURE) == 0) {
    return PermissionDeniedError(
        "tpm_devid: the DevID certificate's keyUsage lacks digitalSignature");
  }
  SIGIL_ASSIGN_OR_RETURN(devid.devid_public,
                         hw::ParseTpm2bPublic(evidence.devid_public, "tpm_devid: devid_public"));
  const TPMT_PUBLIC& devid_area = devid.devid_public.publicArea;
  auto devid_key = hw::PublicKeyOfTpmPublic(devid_area);
  if (!devid_key.ok())
    return PermissionDeniedError("tpm_devid: devid_public: " + devid_key.status().message());
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf), devid_key->get()) != 1) {
    return PermissionDeniedError(
        "tpm_devid: the DevID certificate is not the certificate of devid_public's key");
  }
  if (!HasAttributes(devid_area, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_SIGN_ENCRYPT)) {
    return PermissionDeniedError("tpm_devid: the DevID key is not a fixedTPM signing key");
  }
  devid.key = std::move(*devid_key);
  return devid;
}

// The endorsement key: an RSA, fixedTPM, restricted decryption key, vouched for by its
// manufacturer's certificate (chained to one of `endorsement_cas`) unless that is waived.
Result<TPM2B_PUBLIC> CheckEndorsementKey(const TpmDevIdEvidence& evidence, const std::vector<X509Ptr>& endorsement_cas,
                                         bool allow_ek_without_certificate, TimePoint now) {
  SIGIL_ASSIGN_OR_RETURN(TPM2B_PUBLIC ek_public,
                         hw::ParseTpm2bPublic(evidence.ek_public, "tpm_devid: ek_public"));
  const TPMT_PUBLIC& ek_area = ek_public.publicArea;
  if (ek_area.type != TPM2_ALG_RSA ||
      !HasAttributes(ek_area,
                     TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)) {
    return PermissionDeniedError(
        "tpm_devid: ek_public is not an RSA, fixedTPM, restricted decryption key");
  }
  auto ek_key = hw::PublicKeyOfTpmPublic(ek_area);
  if (!ek_key.ok())
    return PermissionDeniedError("tpm_devid: ek_public: " + ek_key.status().message());
  if (evidence.ek_certificate.empty()) {
    if (!allow_ek_without_certificate) {
      return PermissionDeniedError(
          "tpm_devid: the TPM offered no EK certificate, and an EK public key alone "
          "is not accepted (allow_ek_without_certificate is off)");
    }
  } else {
    SIGIL_ASSIGN_OR_RETURN(X509Ptr ek_cert,
                           ParseDer(evidence.ek_certificate, "tpm_devid: ek_certificate"));
    SIGIL_RETURN_IF_ERROR(
        VerifyChain(ek_cert.get(), {}, endorsement_cas, now, "tpm_devid: the EK certificate")
            .status());
    if (EVP_PKEY_eq(X509_get0_pubkey(ek_cert.get()), ek_key->get()) != 1) {
      return PermissionDeniedError(
          "tpm_devid: the EK certificate is not the certificate of ek_public's key");
    }
  }
  return ek_public;
}

// The attestation key, and its TPM-made certification that the DevID key (`devid_area`) lives in
// the same TPM.
Result<TPM2B_PUBLIC> CheckAkCertifiesDevId(const TpmDevIdEvidence& evidence, const TPMT_PUBLIC& devid_area) {
  SIGIL_ASSIGN_OR_RETURN(TPM2B_PUBLIC ak_public,
                         hw::ParseTpm2bPublic(evidence.ak_public, "tpm_devid: ak_public"));
  const TPMT_PUBLIC& ak_area = ak_public.publicArea;
  if (!HasAttributes(ak_area, TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                  TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT) ||
      (ak_area.objectAttributes & TPMA_OBJECT_DECRYPT) != 0) {
    return PermissionDeniedError(
        "tpm_devid: the AK is not a fixedTPM, fixedParent, restricted signing key");
  }
  auto ak_key = hw::PublicKeyOfTpmPublic(ak_area);
  if (!ak_key.ok())
    return PermissionDeniedError("tpm_devid: ak_public: " + ak_key.status().message());

  TPM2B_ATTEST attest_bytes{};
  size_t offset = 0;
  if (hw::Tss2().Tss2_MU_TPM2B_ATTEST_Unmarshal(evidence.certify_info.data(), evidence.certify_info.size(),
                                     &offset, &attest_bytes) != 0 ||
      offset != evidence.certify_info.size()) {
    return InvalidArgumentError("tpm_devid: certify_info is not a marshalled TPM2B_ATTEST");
  }
  TPMS_ATTEST attest{};
  offset = 0;
  if (hw::Tss2().Tss2_MU_TPMS_ATTEST_Unmarshal(attest_bytes.attestationData, attest_bytes.size, &offset,
                                    &attest) != 0 ||
      offset != attest_bytes.size) {
    return InvalidArgumentError("tpm_devid: certify_info does not hold a TPMS_ATTEST");
  }
  if (attest.magic != TPM2_GENERATED_VALUE || attest.type != TPM2_ST_ATTEST_CERTIFY) {
    return PermissionDeniedError("tpm_devid: certify_info is not a TPM-generated certification");
  }
  SIGIL_ASSIGN_OR_RETURN(Bytes devid_name, hw::TpmObjectName(devid_area));
  const TPM2B_NAME& certified = attest.attested.certify.name;
  if (certified.size != devid_name.size() ||
      std::memcmp(certified.name, devid_name.data(), devid_name.size()) != 0) {
    return PermissionDeniedError("tpm_devid: certify_info certifies another key than devid_public");
  }
  SIGIL_ASSIGN_OR_RETURN(
      TPMT_SIGNATURE certify_signature,
      hw::ParseTpmtSignature(evidence.certify_signature, "tpm_devid: certify_signature"));
  Status signed_by_ak = hw::VerifyTpmSignature(
      ak_key->get(), certify_signature,
      std::span<const uint8_t>(attest_bytes.attestationData, attest_bytes.size));
  if (!signed_by_ak.ok()) {
    return PermissionDeniedError(
        "tpm_devid: certify_signature is not the AK's signature of certify_info: " +
        signed_by_ak.message());
  }
  return ak_public;
}

// What the host will be known by once it answers: its DevID certificate's fingerprint, and
// selectors of its names and of the CAs above it.
TpmDevIdIdentity IdentityOf(const CheckedDevId& devid) {
  TpmDevIdIdentity identity;
  X509* leaf = devid.chain.front().get();
  identity.fingerprint = Sha1Fingerprint(leaf);
  identity.agent_path = "tpm_devid/" + identity.fingerprint;
  const std::string subject_cn = CommonName(X509_get_subject_name(leaf));
  const std::string issuer_cn = CommonName(X509_get_issuer_name(leaf));
  if (!subject_cn.empty()) identity.selectors.push_back({"tpm_devid", "subject:cn:" + subject_cn});
  if (!issuer_cn.empty()) identity.selectors.push_back({"tpm_devid", "issuer:cn:" + issuer_cn});
  for (int i = 1; i < sk_X509_num(devid.verified.get()); ++i) {
    identity.selectors.push_back(
        {"tpm_devid", "fingerprint:" + Sha1Fingerprint(sk_X509_value(devid.verified.get(), i))});
  }
  return identity;
}

}  // namespace

struct TpmDevIdAttestor::Session {
  Bytes nonce;
  Bytes secret;
  EvpPkeyPtr devid_key;
  TpmDevIdIdentity identity;
  TimePoint expires_at;
};

TpmDevIdAttestor::TpmDevIdAttestor(TpmDevIdAttestorConfig config, std::vector<X509Ptr> devid_cas,
                                   std::vector<X509Ptr> endorsement_cas)
    : config_(std::move(config)),
      devid_cas_(std::move(devid_cas)),
      endorsement_cas_(std::move(endorsement_cas)) {}

TpmDevIdAttestor::~TpmDevIdAttestor() = default;

TpmDevIdAttestorConfig ReadTpmDevIdAttestorConfig(ConfigSection& section) {
  TpmDevIdAttestorConfig config;
  std::vector<std::string> paths;
  section.Read("devid_ca_path", paths);
  for (const auto& ca : paths) config.devid_ca_paths.emplace_back(ca);
  if (paths.empty()) section.Problem("devid_ca_path", "is required for tpm_devid attestation");
  paths.clear();
  section.Read("endorsement_ca_path", paths);
  for (const auto& ca : paths) config.endorsement_ca_paths.emplace_back(ca);
  section.Read("allow_ek_without_certificate", config.allow_ek_without_certificate);
  if (paths.empty() && !config.allow_ek_without_certificate) {
    section.Problem("endorsement_ca_path", "is required unless allow_ek_without_certificate is true");
  }
  section.RefuseUnknownKeys();
  return config;
}

NodeAttestorPlugin TpmDevIdAttestor::Plugin() {
  return {.name = "tpm_devid", .configure = [](ConfigSection& section) -> MakeNodeAttestor {
            return [config = ReadTpmDevIdAttestorConfig(section)](const NodeAttestorDeps&)
                       -> Result<std::unique_ptr<NodeAttestor>> {
              SIGIL_ASSIGN_OR_RETURN(auto attestor, Create(config));
              return std::unique_ptr<NodeAttestor>(std::move(attestor));
            };
          }};
}

Result<std::unique_ptr<TpmDevIdAttestor>> TpmDevIdAttestor::Create(
    const TpmDevIdAttestorConfig& config) {
  // Checking a host's TPM evidence reads TPM structures with tpm2-tss.
  SIGIL_RETURN_IF_ERROR(hw::LoadTss2().status());
  if (config.devid_ca_paths.empty())
    return InvalidArgumentError("tpm_devid: devid_ca_path is required");
  if (config.endorsement_ca_paths.empty() && !config.allow_ek_without_certificate) {
    return InvalidArgumentError(
        "tpm_devid: endorsement_ca_path is required unless EKs without a certificate are allowed");
  }
  if (config.challenge_ttl <= std::chrono::seconds(0))
    return InvalidArgumentError("tpm_devid: challenge_ttl must be positive");
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> devid_cas,
                         LoadCaFiles(config.devid_ca_paths, "DevID CA file"));
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> endorsement_cas,
                         LoadCaFiles(config.endorsement_ca_paths, "endorsement CA file"));
  return std::unique_ptr<TpmDevIdAttestor>(
      new TpmDevIdAttestor(config, std::move(devid_cas), std::move(endorsement_cas)));
}

size_t TpmDevIdAttestor::pending_sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

Result<TpmDevIdChallenge> TpmDevIdAttestor::Begin(const TpmDevIdEvidence& evidence, TimePoint now) {
  SIGIL_ASSIGN_OR_RETURN(CheckedDevId devid, CheckDevId(evidence, devid_cas_, now));
  SIGIL_ASSIGN_OR_RETURN(TPM2B_PUBLIC ek_public, CheckEndorsementKey(evidence, endorsement_cas_,
                                                                     config_.allow_ek_without_certificate, now));
  SIGIL_ASSIGN_OR_RETURN(TPM2B_PUBLIC ak_public, CheckAkCertifiesDevId(evidence, devid.devid_public.publicArea));

  SIGIL_ASSIGN_OR_RETURN(Bytes ak_name, hw::TpmObjectName(ak_public.publicArea));
  Session session;
  session.nonce = RandomBytes(kNonceSize);
  session.secret = RandomBytes(kSecretSize);
  SIGIL_ASSIGN_OR_RETURN(MadeCredential credential,
                         MakeCredential(ek_public.publicArea, ak_name, session.secret));
  session.identity = IdentityOf(devid);
  session.devid_key = std::move(devid.key);
  session.expires_at = now + config_.challenge_ttl;

  TpmDevIdChallenge challenge;
  challenge.session_id = HexEncode(RandomBytes(16));
  challenge.nonce = session.nonce;
  challenge.credential_blob = std::move(credential.credential_blob);
  challenge.encrypted_secret = std::move(credential.encrypted_secret);

  std::lock_guard lock(mutex_);
  std::erase_if(sessions_, [&](const auto& entry) { return entry.second.expires_at <= now; });
  if (sessions_.size() >= config_.max_pending_sessions) {
    return ResourceExhaustedError(
        "tpm_devid: too many attestations waiting for their challenge answer");
  }
  sessions_.emplace(challenge.session_id, std::move(session));
  return challenge;
}

Result<TpmDevIdIdentity> TpmDevIdAttestor::Finish(const TpmDevIdAnswer& answer, TimePoint now) {
  Session session;
  {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(answer.session_id);
    if (it == sessions_.end()) {
      return PermissionDeniedError(
          "tpm_devid: no pending challenge with this session id (unknown, answered "
          "already, or expired)");
    }
    session = std::move(it->second);
    sessions_.erase(it);
  }
  if (now >= session.expires_at)
    return PermissionDeniedError("tpm_devid: the challenge expired before its answer came");

  auto signature = hw::ParseTpmtSignature(answer.nonce_signature, "tpm_devid: nonce_signature");
  if (!signature.ok()) return signature.status();
  Status signed_by_devid =
      hw::VerifyTpmSignature(session.devid_key.get(), *signature, session.nonce);
  if (!signed_by_devid.ok()) {
    return PermissionDeniedError("tpm_devid: the nonce signature is not the DevID key's: " +
                                 signed_by_devid.message());
  }
  if (answer.credential_secret.size() != session.secret.size() ||
      CRYPTO_memcmp(answer.credential_secret.data(), session.secret.data(),
                    session.secret.size()) != 0) {
    return PermissionDeniedError(
        "tpm_devid: the activated credential is wrong (the AK and EK are not in one TPM)");
  }
  return std::move(session.identity);
}

Result<AttestationStep> TpmDevIdAttestor::Attest(const wire::AttestationRequest& request) {
  if (request.data_type() == wire::AttestationData::TpmDevIdAttestation) {
    SIGIL_ASSIGN_OR_RETURN(TpmDevIdChallenge challenge,
                           Begin(wire::TpmDevIdEvidenceFromWire(*request.data_as_TpmDevIdAttestation())));
    flatbuffers::FlatBufferBuilder builder(1024);
    return AttestationStep{.challenge = wire::FinishMessage(builder, wire::TpmDevIdChallengeToWire(builder, challenge))};
  }
  SIGIL_ASSIGN_OR_RETURN(TpmDevIdIdentity identity,
                         Finish(wire::TpmDevIdAnswerFromWire(*request.data_as_TpmDevIdChallengeAnswer())));
  return AttestationStep{.host = AttestedHost{.agent_path = std::move(identity.agent_path),
                                              .attestation_type = "tpm_devid",
                                              .selectors = std::move(identity.selectors)}};
}

}  // namespace sigil::serverd
