#include "hw/tpm_devid.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "core/base64url.h"
#include "core/file.h"
#include "core/openssl_util.h"
#include "core/trust_bundle.h"
#include "hw/tpm_device.h"
#include "hw/tpm_public.h"

namespace sigil::hw {

namespace {

// Where the TCG EK Credential Profile puts the certificate of the RSA-2048 EK.
constexpr TPM2_HANDLE kRsaEkCertificateIndex = 0x01c00002;
// Where the TCG Provisioning Guidance keeps the RSA EK when the vendor or owner persisted it.
constexpr TPM2_HANDLE kRsaEkPersistentHandle = 0x81010001;
// Larger than any certificate an EK index holds, smaller than every TPM's NV buffer limit.
constexpr UINT16 kNvReadChunk = 512;

// The default EK's authPolicy: the digest of PolicySecret(TPM_RH_ENDORSEMENT), so the EK can
// be used only by whoever knows the endorsement hierarchy's auth value.
constexpr uint8_t kPolicySecretEndorsement[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

// The TCG default EK template (EK Credential Profile, template L-1): RSA-2048, AES-128-CFB.
// Recreating it yields the EK the manufacturer certified.
TPM2B_PUBLIC EndorsementKeyTemplate() {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& area = in.publicArea;
  area.type = TPM2_ALG_RSA;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
  area.authPolicy.size = sizeof(kPolicySecretEndorsement);
  std::memcpy(area.authPolicy.buffer, kPolicySecretEndorsement, sizeof(kPolicySecretEndorsement));
  area.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
  area.parameters.rsaDetail.symmetric.keyBits.aes = 128;
  area.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  area.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
  area.parameters.rsaDetail.keyBits = 2048;
  area.parameters.rsaDetail.exponent = 0;
  area.unique.rsa.size = 256;
  return in;
}

// A restricted signing key can sign only digests the TPM made itself (attestations), so the
// server may trust that what it signed came out of this TPM. The random unique value makes a
// new AK for every attestation; keeping the template lets the same AK be recreated for the
// credential activation.
Result<TPM2B_PUBLIC> NewAttestationKeyTemplate() {
  TPM2B_PUBLIC in{};
  TPMT_PUBLIC& area = in.publicArea;
  area.type = TPM2_ALG_ECC;
  area.nameAlg = TPM2_ALG_SHA256;
  area.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
  area.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  area.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
  area.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
  area.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  area.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  area.unique.ecc.x.size = 32;
  if (RAND_bytes(area.unique.ecc.x.buffer, 32) != 1) {
    return OpenSSLError(Code::kInternal, "drawing the attestation key's unique value");
  }
  return in;
}

// Flushes a transient object or session when it goes out of scope.
class FlushOnExit {
 public:
  FlushOnExit(ESYS_CONTEXT* esys, ESYS_TR handle) : esys_(esys), handle_(handle) {}
  ~FlushOnExit() {
    if (handle_ != ESYS_TR_NONE) Tss2().Esys_FlushContext(esys_, handle_);
  }
  FlushOnExit(const FlushOnExit&) = delete;
  FlushOnExit& operator=(const FlushOnExit&) = delete;

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR handle_;
};

struct CreatedPrimary {
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC public_part{};
};

Result<CreatedPrimary> CreatePrimaryIn(ESYS_CONTEXT* esys, ESYS_TR hierarchy,
                                       const TPM2B_PUBLIC& in_public, const std::string& what) {
  const TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION pcrs{};
  CreatedPrimary created;
  TPM2B_PUBLIC* out_public = nullptr;
  TPM2B_CREATION_DATA* creation_data = nullptr;
  TPM2B_DIGEST* creation_hash = nullptr;
  TPMT_TK_CREATION* creation_ticket = nullptr;
  const TSS2_RC rc =
      Tss2().Esys_CreatePrimary(esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                         &in_public, &outside, &pcrs, &created.handle, &out_public, &creation_data,
                         &creation_hash, &creation_ticket);
  EsysPtr<TPM2B_PUBLIC> p1(out_public);
  EsysPtr<TPM2B_CREATION_DATA> p2(creation_data);
  EsysPtr<TPM2B_DIGEST> p3(creation_hash);
  EsysPtr<TPMT_TK_CREATION> p4(creation_ticket);
  if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "creating the " + what);
  created.public_part = *out_public;
  return created;
}

// A policy session satisfying the EK's policy: PolicySecret with the endorsement hierarchy's
// auth value.
Result<ESYS_TR> StartEndorsementPolicySession(ESYS_CONTEXT* esys) {
  TPMT_SYM_DEF symmetric{};
  symmetric.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Tss2().Esys_StartAuthSession(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &symmetric,
                                     TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "starting the endorsement policy session");
  const TPM2B_NONCE nonce_tpm{};
  const TPM2B_DIGEST cp_hash{};
  const TPM2B_NONCE policy_ref{};
  TPM2B_TIMEOUT* timeout = nullptr;
  TPMT_TK_AUTH* ticket = nullptr;
  rc = Tss2().Esys_PolicySecret(esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &nonce_tpm, &cp_hash, &policy_ref, 0, &timeout, &ticket);
  Tss2().Esys_Free(timeout);
  Tss2().Esys_Free(ticket);
  if (rc != TSS2_RC_SUCCESS) {
    Tss2().Esys_FlushContext(esys, session);
    return TpmError(rc, "satisfying the EK policy (PolicySecret of the endorsement hierarchy)");
  }
  return session;
}

bool IsMissingHandle(TSS2_RC rc) {
  return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 &&
         (rc & 0xbf) == (TPM2_RC_HANDLE & 0xbf);
}

// The RSA EK: the persistent one when the TPM keeps one with the default policy (a real TPM
// takes seconds to derive an RSA primary key), else recreated from the default template.
// Releases what it loaded when it goes out of scope.
class EndorsementKey {
 public:
  static Result<std::unique_ptr<EndorsementKey>> Load(ESYS_CONTEXT* esys) {
    auto key = std::unique_ptr<EndorsementKey>(new EndorsementKey(esys));
    TSS2_RC rc = Tss2().Esys_TR_FromTPMPublic(esys, kRsaEkPersistentHandle, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &key->handle_);
    if (rc == TSS2_RC_SUCCESS) {
      TPM2B_PUBLIC* out_public = nullptr;
      TPM2B_NAME* name = nullptr;
      TPM2B_NAME* qualified_name = nullptr;
      rc = Tss2().Esys_ReadPublic(esys, key->handle_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                           &out_public, &name, &qualified_name);
      EsysPtr<TPM2B_PUBLIC> p1(out_public);
      EsysPtr<TPM2B_NAME> p2(name);
      EsysPtr<TPM2B_NAME> p3(qualified_name);
      if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "reading the persistent EK");
      const TPMT_PUBLIC& area = out_public->publicArea;
      const bool default_policy = area.authPolicy.size == sizeof(kPolicySecretEndorsement) &&
                                  std::memcmp(area.authPolicy.buffer, kPolicySecretEndorsement,
                                              sizeof(kPolicySecretEndorsement)) == 0;
      if (area.type == TPM2_ALG_RSA && default_policy) {
        key->public_part_ = *out_public;
        return key;
      }
      Tss2().Esys_TR_Close(esys, &key->handle_);
      key->handle_ = ESYS_TR_NONE;
    } else if (!IsMissingHandle(rc)) {
      return TpmError(rc, "looking up the persistent EK");
    }
    SIGIL_ASSIGN_OR_RETURN(
        CreatedPrimary created,
        CreatePrimaryIn(esys, ESYS_TR_RH_ENDORSEMENT, EndorsementKeyTemplate(), "endorsement key"));
    key->handle_ = created.handle;
    key->public_part_ = created.public_part;
    key->transient_ = true;
    return key;
  }

  ~EndorsementKey() {
    if (handle_ == ESYS_TR_NONE) return;
    if (transient_) {
      Tss2().Esys_FlushContext(esys_, handle_);
    } else {
      Tss2().Esys_TR_Close(esys_, &handle_);
    }
  }
  EndorsementKey(const EndorsementKey&) = delete;
  EndorsementKey& operator=(const EndorsementKey&) = delete;

  ESYS_TR handle() const { return handle_; }
  const TPM2B_PUBLIC& public_part() const { return public_part_; }

 private:
  explicit EndorsementKey(ESYS_CONTEXT* esys) : esys_(esys) {}

  ESYS_CONTEXT* esys_;
  ESYS_TR handle_ = ESYS_TR_NONE;
  TPM2B_PUBLIC public_part_{};
  bool transient_ = false;
};

// The EK certificate from NV, or nothing when the TPM has none. NV indices are often larger
// than the certificate, so the DER is cut to its own length.
Result<Bytes> ReadEkCertificate(ESYS_CONTEXT* esys) {
  ESYS_TR index = ESYS_TR_NONE;
  TSS2_RC rc = Tss2().Esys_TR_FromTPMPublic(esys, kRsaEkCertificateIndex, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, &index);
  if (IsMissingHandle(rc)) return Bytes{};
  if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "looking up the EK certificate's NV index");
  struct CloseOnExit {
    ESYS_CONTEXT* esys;
    ESYS_TR* index;
    ~CloseOnExit() { Tss2().Esys_TR_Close(esys, index); }
  } close{esys, &index};

  TPM2B_NV_PUBLIC* nv_public = nullptr;
  TPM2B_NAME* nv_name = nullptr;
  rc = Tss2().Esys_NV_ReadPublic(esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv_public,
                          &nv_name);
  EsysPtr<TPM2B_NV_PUBLIC> owned_public(nv_public);
  EsysPtr<TPM2B_NAME> owned_name(nv_name);
  if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "reading the EK certificate's NV index");
  const TPMA_NV attributes = nv_public->nvPublic.attributes;
  ESYS_TR auth = index;
  if ((attributes & TPMA_NV_AUTHREAD) == 0) {
    auth = (attributes & TPMA_NV_OWNERREAD) != 0 ? ESYS_TR_RH_OWNER : ESYS_TR_RH_PLATFORM;
  }
  const UINT16 size = nv_public->nvPublic.dataSize;
  Bytes der;
  der.reserve(size);
  for (UINT16 offset = 0; offset < size;) {
    const UINT16 chunk = std::min<UINT16>(kNvReadChunk, size - offset);
    TPM2B_MAX_NV_BUFFER* data = nullptr;
    rc = Tss2().Esys_NV_Read(esys, auth, index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, chunk,
                      offset, &data);
    EsysPtr<TPM2B_MAX_NV_BUFFER> owned_data(data);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "reading the EK certificate from NV");
    der.insert(der.end(), data->buffer, data->buffer + data->size);
    offset = static_cast<UINT16>(offset + data->size);
    if (data->size == 0) break;
  }
  const uint8_t* cursor = der.data();
  X509Ptr parsed(d2i_X509(nullptr, &cursor, static_cast<long>(der.size())));
  if (!parsed) {
    return OpenSSLError(Code::kDataLoss,
                        "the EK certificate in NV index 0x01c00002 does not parse");
  }
  der.resize(static_cast<size_t>(cursor - der.data()));
  return der;
}

// The DevID key, loaded from its blob under the SRK or found at its persistent handle.
// Releases what it loaded when it goes out of scope.
class DevIdKey {
 public:
  static Result<std::unique_ptr<DevIdKey>> Load(ESYS_CONTEXT* esys, ESYS_TR srk,
                                                const KeyBlob& blob, uint32_t persistent_handle,
                                                const TPM2B_AUTH& auth) {
    auto key = std::unique_ptr<DevIdKey>(new DevIdKey(esys, persistent_handle != 0));
    if (persistent_handle != 0) {
      const TSS2_RC rc = Tss2().Esys_TR_FromTPMPublic(esys, persistent_handle, ESYS_TR_NONE, ESYS_TR_NONE,
                                               ESYS_TR_NONE, &key->handle_);
      if (rc != TSS2_RC_SUCCESS) {
        key->handle_ = ESYS_TR_NONE;
        return TpmError(
            rc, "finding the DevID key at persistent handle " + HandleText(persistent_handle));
      }
    } else {
      const TSS2_RC rc = Tss2().Esys_Load(esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                   &blob.private_part, &blob.public_part, &key->handle_);
      if (rc != TSS2_RC_SUCCESS) {
        key->handle_ = ESYS_TR_NONE;
        return TpmError(rc, "loading the DevID key (was it made by another TPM?)");
      }
    }
    const TSS2_RC rc = Tss2().Esys_TR_SetAuth(esys, key->handle_, &auth);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "setting the DevID key's auth value");
    return key;
  }

  ~DevIdKey() {
    if (handle_ == ESYS_TR_NONE) return;
    if (persistent_) {
      Tss2().Esys_TR_Close(esys_, &handle_);
    } else {
      Tss2().Esys_FlushContext(esys_, handle_);
    }
  }
  DevIdKey(const DevIdKey&) = delete;
  DevIdKey& operator=(const DevIdKey&) = delete;

  ESYS_TR handle() const { return handle_; }

  // The public area the TPM holds for the key.
  Result<TPM2B_PUBLIC> ReadPublic() const {
    TPM2B_PUBLIC* out_public = nullptr;
    TPM2B_NAME* name = nullptr;
    TPM2B_NAME* qualified_name = nullptr;
    const TSS2_RC rc = Tss2().Esys_ReadPublic(esys_, handle_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       &out_public, &name, &qualified_name);
    EsysPtr<TPM2B_PUBLIC> p1(out_public);
    EsysPtr<TPM2B_NAME> p2(name);
    EsysPtr<TPM2B_NAME> p3(qualified_name);
    if (rc != TSS2_RC_SUCCESS) return TpmError(rc, "reading the DevID key's public area");
    return *out_public;
  }

  static std::string HandleText(uint32_t handle) {
    char text[16];
    std::snprintf(text, sizeof(text), "0x%08x", handle);
    return text;
  }

 private:
  DevIdKey(ESYS_CONTEXT* esys, bool persistent) : esys_(esys), persistent_(persistent) {}

  ESYS_CONTEXT* esys_;
  bool persistent_;
  ESYS_TR handle_ = ESYS_TR_NONE;
};

// Gives a hierarchy its auth value for as long as it is in scope, then the empty value again.
class HierarchyAuth {
 public:
  HierarchyAuth(ESYS_CONTEXT* esys, ESYS_TR hierarchy, const TPM2B_AUTH& auth)
      : esys_(esys), hierarchy_(hierarchy) {
    Tss2().Esys_TR_SetAuth(esys_, hierarchy_, &auth);
  }
  ~HierarchyAuth() {
    const TPM2B_AUTH empty{};
    Tss2().Esys_TR_SetAuth(esys_, hierarchy_, &empty);
  }
  HierarchyAuth(const HierarchyAuth&) = delete;
  HierarchyAuth& operator=(const HierarchyAuth&) = delete;

 private:
  ESYS_CONTEXT* esys_;
  ESYS_TR hierarchy_;
};

}  // namespace

TpmDevIdConfig TpmDevIdConfig::InDir(std::string tcti, const std::filesystem::path& dir) {
  TpmDevIdConfig config;
  config.tcti = std::move(tcti);
  config.devid_public_path = dir / "devid.pub";
  config.devid_private_path = dir / "devid.priv";
  config.devid_certificate_path = dir / "devid.crt.pem";
  return config;
}

class TpmDevIdAgent::Impl {
 public:
  std::shared_ptr<TpmDevice> device;
  KeyBlob devid;  // only the public half when the key is persistent
  uint32_t persistent_handle = 0;
  TPM2B_AUTH devid_auth{};
  TPM2B_AUTH endorsement_auth{};
  KeyType devid_type = KeyType::kEcP256;
  std::vector<Bytes> chain_der;
  std::optional<TPM2B_PUBLIC> ak_template;  // of the AK in the latest evidence
  TPM2B_PUBLIC ak_public{};
};

TpmDevIdAgent::TpmDevIdAgent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TpmDevIdAgent::~TpmDevIdAgent() = default;

Result<std::unique_ptr<TpmDevIdAgent>> TpmDevIdAgent::Open(const TpmDevIdConfig& config) {
  if (config.tcti.empty()) return InvalidArgumentError("tpm_devid: tcti is required");
  const uint32_t persistent = config.devid_persistent_handle;
  if (persistent != 0 && (persistent >> 24) != TPM2_HT_PERSISTENT) {
    return InvalidArgumentError("tpm_devid: devid_persistent_handle " +
                                DevIdKey::HandleText(persistent) +
                                " is not a persistent handle (0x81xxxxxx)");
  }
  // The key files are parsed with tpm2-tss before the TPM is opened.
  SIGIL_RETURN_IF_ERROR(LoadTss2().status());
  auto impl = std::make_unique<Impl>();
  impl->persistent_handle = persistent;
  SIGIL_ASSIGN_OR_RETURN(impl->devid_auth,
                         ReadAuthFile(config.devid_auth_file, "tpm_devid: devid_auth_file"));
  SIGIL_ASSIGN_OR_RETURN(impl->endorsement_auth, ReadAuthFile(config.endorsement_auth_file,
                                                              "tpm_devid: endorsement_auth_file"));
  SIGIL_ASSIGN_OR_RETURN(std::string chain_pem,
                         ReadWholeFile(config.devid_certificate_path, "DevID certificate"));
  auto chain = CertsFromPem(chain_pem);
  if (!chain.ok()) {
    return InvalidArgumentError("DevID certificate " + config.devid_certificate_path.string() +
                                ": " + chain.status().message());
  }
  for (const X509Ptr& cert : *chain) {
    unsigned char* der = nullptr;
    const int size = i2d_X509(cert.get(), &der);
    if (size <= 0) return OpenSSLError(Code::kInternal, "encoding the DevID chain");
    impl->chain_der.emplace_back(der, der + size);
    OPENSSL_free(der);
  }
  std::string key_source = DevIdKey::HandleText(persistent);
  if (persistent == 0) {
    key_source = config.devid_public_path.string();
    SIGIL_ASSIGN_OR_RETURN(std::string public_file,
                           ReadWholeFile(config.devid_public_path, "DevID public key"));
    SIGIL_ASSIGN_OR_RETURN(std::string private_file,
                           ReadWholeFile(config.devid_private_path, "DevID private key blob"));
    const std::span<const uint8_t> private_bytes = AsBytes(private_file);
    SIGIL_ASSIGN_OR_RETURN(impl->devid.public_part,
                           ParseTpm2bPublic(AsBytes(public_file), config.devid_public_path.string()));
    size_t offset = 0;
    if (Tss2().Tss2_MU_TPM2B_PRIVATE_Unmarshal(private_bytes.data(), private_bytes.size(), &offset,
                                        &impl->devid.private_part) != 0 ||
        offset != private_bytes.size()) {
      return InvalidArgumentError(config.devid_private_path.string() +
                                  " is not a marshalled TPM2B_PRIVATE");
    }
  }

  SIGIL_ASSIGN_OR_RETURN(impl->device, TpmDevice::Open(config.tcti));
  Impl& loaded = *impl;
  Status loads = impl->device->RunExclusive([&](ESYS_CONTEXT* esys, ESYS_TR srk) -> Status {
    SIGIL_ASSIGN_OR_RETURN(std::unique_ptr<DevIdKey> key,
                           DevIdKey::Load(esys, srk, loaded.devid, persistent, loaded.devid_auth));
    if (persistent != 0) {
      SIGIL_ASSIGN_OR_RETURN(loaded.devid.public_part, key->ReadPublic());
    }
    return Status::Ok();
  });
  if (!loads.ok()) return Status(Code::kFailedPrecondition, loads.message());

  const TPMT_PUBLIC& devid_area = impl->devid.public_part.publicArea;
  SIGIL_ASSIGN_OR_RETURN(impl->devid_type, KeyTypeOfTpmPublic(devid_area));
  SIGIL_ASSIGN_OR_RETURN(EvpPkeyPtr devid_key, PublicKeyOfTpmPublic(devid_area));
  if (EVP_PKEY_eq(X509_get0_pubkey(chain->front().get()), devid_key.get()) != 1) {
    return FailedPreconditionError("the DevID certificate " +
                                   config.devid_certificate_path.string() +
                                   " is not for the key in " + key_source);
  }
  return std::unique_ptr<TpmDevIdAgent>(new TpmDevIdAgent(std::move(impl)));
}

Result<TpmDevIdEvidence> TpmDevIdAgent::MakeEvidence() {
  std::lock_guard lock(mutex_);
  Impl& impl = *impl_;
  TpmDevIdEvidence evidence;
  evidence.devid_chain_der = impl.chain_der;
  evidence.devid_public = MarshalTpm2bPublic(impl.devid.public_part);
  SIGIL_ASSIGN_OR_RETURN(TPM2B_PUBLIC ak_template, NewAttestationKeyTemplate());

  Status made = impl.device->RunExclusive([&](ESYS_CONTEXT* esys, ESYS_TR srk) -> Status {
    HierarchyAuth endorsement(esys, ESYS_TR_RH_ENDORSEMENT, impl.endorsement_auth);
    {
      SIGIL_ASSIGN_OR_RETURN(std::unique_ptr<EndorsementKey> ek, EndorsementKey::Load(esys));
      evidence.ek_public = MarshalTpm2bPublic(ek->public_part());
    }
    SIGIL_ASSIGN_OR_RETURN(evidence.ek_certificate, ReadEkCertificate(esys));

    SIGIL_ASSIGN_OR_RETURN(CreatedPrimary ak, CreatePrimaryIn(esys, ESYS_TR_RH_ENDORSEMENT,
                                                              ak_template, "attestation key"));
    FlushOnExit flush_ak(esys, ak.handle);
    SIGIL_ASSIGN_OR_RETURN(
        std::unique_ptr<DevIdKey> devid,
        DevIdKey::Load(esys, srk, impl.devid, impl.persistent_handle, impl.devid_auth));

    // The server learns nothing from the qualifying data; fresh bytes keep two certifications
    // of the same key apart.
    TPM2B_DATA qualifying{};
    qualifying.size = 16;
    if (RAND_bytes(qualifying.buffer, qualifying.size) != 1) {
      return OpenSSLError(Code::kInternal, "drawing the certification's qualifying data");
    }
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the AK's own scheme
    TPM2B_ATTEST* certify_info = nullptr;
    TPMT_SIGNATURE* signature = nullptr;
    const TSS2_RC rc =
        Tss2().Esys_Certify(esys, devid->handle(), ak.handle, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD,
                     ESYS_TR_NONE, &qualifying, &scheme, &certify_info, &signature);
    EsysPtr<TPM2B_ATTEST> owned_info(certify_info);
    EsysPtr<TPMT_SIGNATURE> owned_signature(signature);
    if (rc != TSS2_RC_SUCCESS)
      return TpmError(rc, "certifying the DevID key with the attestation key");
    Bytes info(sizeof(TPM2B_ATTEST));
    size_t size = 0;
    Tss2().Tss2_MU_TPM2B_ATTEST_Marshal(certify_info, info.data(), info.size(), &size);
    info.resize(size);
    evidence.certify_info = std::move(info);
    evidence.certify_signature = MarshalTpmtSignature(*signature);
    evidence.ak_public = MarshalTpm2bPublic(ak.public_part);
    impl.ak_public = ak.public_part;
    return Status::Ok();
  });
  SIGIL_RETURN_IF_ERROR(std::move(made).AddContext("while making TPM DevID evidence"));
  impl.ak_template = ak_template;
  return evidence;
}

Result<TpmDevIdAnswer> TpmDevIdAgent::AnswerChallenge(const TpmDevIdChallenge& challenge) {
  std::lock_guard lock(mutex_);
  Impl& impl = *impl_;
  if (!impl.ak_template)
    return FailedPreconditionError("a TPM DevID challenge came before any evidence was made");
  TPM2B_ID_OBJECT credential_blob{};
  TPM2B_ENCRYPTED_SECRET encrypted_secret{};
  size_t offset = 0;
  if (Tss2().Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(challenge.credential_blob.data(),
                                        challenge.credential_blob.size(), &offset,
                                        &credential_blob) != 0 ||
      offset != challenge.credential_blob.size()) {
    return InvalidArgumentError(
        "the challenge's credential_blob is not a marshalled TPM2B_ID_OBJECT");
  }
  offset = 0;
  if (Tss2().Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(challenge.encrypted_secret.data(),
                                               challenge.encrypted_secret.size(), &offset,
                                               &encrypted_secret) != 0 ||
      offset != challenge.encrypted_secret.size()) {
    return InvalidArgumentError(
        "the challenge's encrypted_secret is not a marshalled TPM2B_ENCRYPTED_SECRET");
  }

  TpmDevIdAnswer answer;
  answer.session_id = challenge.session_id;
  Status answered = impl.device->RunExclusive([&](ESYS_CONTEXT* esys, ESYS_TR srk) -> Status {
    HierarchyAuth endorsement(esys, ESYS_TR_RH_ENDORSEMENT, impl.endorsement_auth);
    {
      SIGIL_ASSIGN_OR_RETURN(
          std::unique_ptr<DevIdKey> devid,
          DevIdKey::Load(esys, srk, impl.devid, impl.persistent_handle, impl.devid_auth));
      const bool p384 = impl.devid_type == KeyType::kEcP384;
      TPM2B_DIGEST digest{};
      unsigned int digest_size = 0;
      if (EVP_Digest(challenge.nonce.data(), challenge.nonce.size(), digest.buffer, &digest_size,
                     p384 ? EVP_sha384() : EVP_sha256(), nullptr) != 1) {
        return OpenSSLError(Code::kInternal, "hashing the challenge nonce");
      }
      digest.size = static_cast<UINT16>(digest_size);
      const TPMI_ALG_HASH hash = p384 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
      TPMT_SIG_SCHEME scheme{};
      if (impl.devid_type == KeyType::kRsa2048) {
        scheme.scheme = TPM2_ALG_RSASSA;
        scheme.details.rsassa.hashAlg = hash;
      } else {
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = hash;
      }
      TPMT_TK_HASHCHECK validation{};
      validation.tag = TPM2_ST_HASHCHECK;
      validation.hierarchy = TPM2_RH_NULL;
      TPMT_SIGNATURE* signature = nullptr;
      const TSS2_RC rc = Tss2().Esys_Sign(esys, devid->handle(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, &digest, &scheme, &validation, &signature);
      EsysPtr<TPMT_SIGNATURE> owned(signature);
      if (rc != TSS2_RC_SUCCESS)
        return TpmError(rc, "signing the challenge nonce with the DevID key");
      answer.nonce_signature = MarshalTpmtSignature(*signature);
    }

    SIGIL_ASSIGN_OR_RETURN(std::unique_ptr<EndorsementKey> ek, EndorsementKey::Load(esys));
    SIGIL_ASSIGN_OR_RETURN(
        CreatedPrimary ak,
        CreatePrimaryIn(esys, ESYS_TR_RH_ENDORSEMENT, *impl.ak_template, "attestation key"));
    FlushOnExit flush_ak(esys, ak.handle);
    if (MarshalTpm2bPublic(ak.public_part) != MarshalTpm2bPublic(impl.ak_public)) {
      return FailedPreconditionError(
          "the TPM made a different attestation key than the evidence's "
          "(was the endorsement hierarchy reset?)");
    }
    SIGIL_ASSIGN_OR_RETURN(ESYS_TR session, StartEndorsementPolicySession(esys));
    FlushOnExit flush_session(esys, session);
    TPM2B_DIGEST* secret = nullptr;
    const TSS2_RC rc =
        Tss2().Esys_ActivateCredential(esys, ak.handle, ek->handle(), ESYS_TR_PASSWORD, session,
                                ESYS_TR_NONE, &credential_blob, &encrypted_secret, &secret);
    EsysPtr<TPM2B_DIGEST> owned_secret(secret);
    if (rc != TSS2_RC_SUCCESS) {
      return TpmError(rc, "activating the challenge credential (made for another EK or AK?)");
    }
    answer.credential_secret.assign(secret->buffer, secret->buffer + secret->size);
    return Status::Ok();
  });
  SIGIL_RETURN_IF_ERROR(std::move(answered).AddContext("while answering the TPM DevID challenge"));
  return answer;
}

}  // namespace sigil::hw
