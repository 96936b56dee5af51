// tpm2-tss, loaded the first time TPM code runs rather than when the program starts. Its five shared libraries cost every start of agentd and serverd about half a
// millisecond (an empty program linked against them starts in 2.2 ms, 1.7 ms without), and
// most starts never touch a TPM: every `agentd api fetch`, every health check. dlopen
// wrappers are written here because tpm2-tss ships none; the types and constants still come
// from its headers.
//
// Code that may be the first TPM use in the process (opening a TPM, the agent's DevID, serverd's
// DevID attestor) calls LoadTss2() and returns its error; everything after uses Tss2().
#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "core/status.h"

namespace sigil::hw {

// Every tpm2-tss function Sigil calls, by library.
#define SIGIL_TSS2_FUNCTIONS(X)                                                           \
  X(esys, Esys_ActivateCredential) X(esys, Esys_Certify) X(esys, Esys_Create)             \
  X(esys, Esys_CreatePrimary) X(esys, Esys_Finalize) X(esys, Esys_FlushContext)           \
  X(esys, Esys_Free) X(esys, Esys_Initialize) X(esys, Esys_Load) X(esys, Esys_NV_Read)    \
  X(esys, Esys_NV_ReadPublic) X(esys, Esys_PolicySecret) X(esys, Esys_ReadPublic)         \
  X(esys, Esys_Sign) X(esys, Esys_StartAuthSession) X(esys, Esys_Startup)                 \
  X(esys, Esys_TR_Close) X(esys, Esys_TR_FromTPMPublic) X(esys, Esys_TR_SetAuth)          \
  X(mu, Tss2_MU_TPM2B_ATTEST_Marshal) X(mu, Tss2_MU_TPM2B_ATTEST_Unmarshal)               \
  X(mu, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal) X(mu, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal) \
  X(mu, Tss2_MU_TPM2B_ID_OBJECT_Marshal) X(mu, Tss2_MU_TPM2B_ID_OBJECT_Unmarshal)         \
  X(mu, Tss2_MU_TPM2B_PRIVATE_Marshal) X(mu, Tss2_MU_TPM2B_PRIVATE_Unmarshal)             \
  X(mu, Tss2_MU_TPM2B_PUBLIC_Marshal) X(mu, Tss2_MU_TPM2B_PUBLIC_Unmarshal)               \
  X(mu, Tss2_MU_TPMS_ATTEST_Unmarshal) X(mu, Tss2_MU_TPMT_PUBLIC_Marshal)                 \
  X(mu, Tss2_MU_TPMT_SIGNATURE_Marshal) X(mu, Tss2_MU_TPMT_SIGNATURE_Unmarshal)           \
  X(rc, Tss2_RC_Decode) X(tctildr, Tss2_TctiLdr_Finalize) X(tctildr, Tss2_TctiLdr_Initialize)

struct Tss2Library {
#define SIGIL_TSS2_MEMBER(library, name) decltype(&::name) name = nullptr;
  SIGIL_TSS2_FUNCTIONS(SIGIL_TSS2_MEMBER)
#undef SIGIL_TSS2_MEMBER
};

// Loads tpm2-tss once per process. FailedPrecondition naming the library that is missing.
Result<const Tss2Library*> LoadTss2();

// The loaded library. Loads it when no one has yet, and ends the process if it cannot be
// loaded: a caller that may be the first TPM use must have called LoadTss2() first.
const Tss2Library& Tss2();

}  // namespace sigil::hw
