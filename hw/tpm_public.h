// TPM 2.0 structures read without a TPM: a key's public area as an OpenSSL key, its TPM name,
// and a TPMT_SIGNATURE checked with OpenSSL. The TPM key store describes its own keys with
// these; the server checks evidence from a host's TPM with them, and needs no TPM to do so.
//
// Thread safety: pure functions; safe from any thread.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <span>
#include <string_view>

#include "core/openssl_util.h"
#include "core/signer.h"
#include "core/status.h"

namespace sigil::hw {

// EC P-256, EC P-384 or RSA-2048; InvalidArgument for any other key.
Result<KeyType> KeyTypeOfTpmPublic(const TPMT_PUBLIC& area);
Result<EvpPkeyPtr> PublicKeyOfTpmPublic(const TPMT_PUBLIC& area);

// The TPM's name of an object: nameAlg (2 bytes, big-endian) || nameAlg-digest of the
// marshalled TPMT_PUBLIC. InvalidArgument for a nameAlg other than SHA-256/384/512 or SHA-1.
Result<Bytes> TpmObjectName(const TPMT_PUBLIC& area);

// The digest named by a TPM hash algorithm id; nullptr when Sigil does not accept it.
const EVP_MD* TpmHashDigest(TPMI_ALG_HASH hash);

// Marshalled forms, as the TPM writes them. Parsing refuses trailing bytes; `what` names the
// field in the InvalidArgument error.
Bytes MarshalTpm2bPublic(const TPM2B_PUBLIC& value);
Result<TPM2B_PUBLIC> ParseTpm2bPublic(std::span<const uint8_t> bytes, std::string_view what);
Bytes MarshalTpmtSignature(const TPMT_SIGNATURE& value);
Result<TPMT_SIGNATURE> ParseTpmtSignature(std::span<const uint8_t> bytes, std::string_view what);

// Checks a TPM signature (ECDSA, RSASSA or RSAPSS with SHA-256/384/512) over `message`, which
// is hashed with the signature's own hash. PermissionDenied when it does not verify,
// InvalidArgument when the scheme does not fit the key.
Status VerifyTpmSignature(EVP_PKEY* key, const TPMT_SIGNATURE& signature,
                          std::span<const uint8_t> message);

}  // namespace sigil::hw
