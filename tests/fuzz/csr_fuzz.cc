// CheckCsr over arbitrary bytes: a PKCS#10 request as an agent sends it for each workload.
#include "core/csr.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto key = sigil::CheckCsr({data, size});
  // A key CheckCsr hands on is one the CA may certify.
  if (key.ok()) FUZZ_CHECK(sigil::CheckCertifiableKey(key->get()).ok());
  return 0;
}
