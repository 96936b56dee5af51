#include "hw/tss2_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace sigil::hw {

namespace {

Result<Tss2Library> Open() {
  // The sonames Debian's runtime packages install; RTLD_GLOBAL so that the libraries resolve
  // one another's symbols (esys calls mu and the TCTI loader) as they would when linked.
  struct Handles {
    void* esys = nullptr;
    void* mu = nullptr;
    void* rc = nullptr;
    void* tctildr = nullptr;
  } handles;
  const std::pair<void**, const char*> sonames[] = {{&handles.mu, "libtss2-mu.so.0"},
                                                    {&handles.rc, "libtss2-rc.so.0"},
                                                    {&handles.tctildr, "libtss2-tctildr.so.0"},
                                                    {&handles.esys, "libtss2-esys.so.0"}};
  for (const auto& [handle, soname] : sonames) {
    *handle = ::dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
    if (*handle == nullptr) {
      return FailedPreconditionError(std::string("TPM support needs tpm2-tss: cannot load ") + soname + ": " +
                                     ::dlerror());
    }
  }
  Tss2Library library;
#define SIGIL_TSS2_LOAD(lib, name)                                                                    \
  library.name = reinterpret_cast<decltype(&::name)>(::dlsym(handles.lib, #name));                   \
  if (library.name == nullptr) {                                                                      \
    return FailedPreconditionError("TPM support needs tpm2-tss: " #name " is missing from its library"); \
  }
  SIGIL_TSS2_FUNCTIONS(SIGIL_TSS2_LOAD)
#undef SIGIL_TSS2_LOAD
  // The libraries stay loaded for the life of the process, as linked ones would.
  return library;
}

}  // namespace

Result<const Tss2Library*> LoadTss2() {
  static const Result<Tss2Library> loaded = Open();
  if (!loaded.ok()) return loaded.status();
  return &*loaded;
}

const Tss2Library& Tss2() {
  auto library = LoadTss2();
  if (!library.ok()) {
    std::fprintf(stderr, "%s\n", library.status().ToString().c_str());
    std::abort();
  }
  return **library;
}

}  // namespace sigil::hw
