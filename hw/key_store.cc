#include "hw/key_store.h"

#include <cctype>
#include <map>
#include <vector>

#include "core/config.h"
#include "hw/pkcs11_key_store.h"
#include "hw/soft_key_store.h"
#include "hw/tpm_key_store.h"

namespace sigil::hw {

std::string_view KeyStoreKindName(KeyStoreKind kind) {
  switch (kind) {
    case KeyStoreKind::kSoft: return "soft";
    case KeyStoreKind::kPkcs11: return "pkcs11";
    case KeyStoreKind::kTpm: return "tpm";
  }
  return "unknown";
}

Result<KeyStoreKind> ParseKeyStoreKind(std::string_view name) {
  for (KeyStoreKind kind : {KeyStoreKind::kSoft, KeyStoreKind::kPkcs11, KeyStoreKind::kTpm}) {
    if (name == KeyStoreKindName(kind)) return kind;
  }
  return InvalidArgumentError("unknown key store '" + std::string(name) +
                              "': expected soft, pkcs11 or tpm");
}

namespace {

Result<std::string> PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      return InvalidArgumentError("bad percent escape in '" + std::string(text) + "'");
    }
    out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
    i += 2;
  }
  return out;
}

// "a=1;b=2" (or '&'-separated) into a map, refusing duplicates and empty names.
Result<std::map<std::string, std::string>> ParseAttributes(std::string_view text, char separator,
                                                           std::string_view where) {
  std::map<std::string, std::string> attributes;
  while (!text.empty()) {
    const size_t end = text.find(separator);
    std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return InvalidArgumentError(std::string(where) + " attribute '" + std::string(item) +
                                  "' is not name=value");
    }
    SIGIL_ASSIGN_OR_RETURN(std::string value, PercentDecode(item.substr(eq + 1)));
    auto [it, inserted] = attributes.emplace(std::string(item.substr(0, eq)), std::move(value));
    if (!inserted) {
      return InvalidArgumentError(std::string(where) + " attribute '" + it->first +
                                  "' is given twice");
    }
  }
  return attributes;
}

Status RefuseUnknown(const std::map<std::string, std::string>& attributes,
                     const std::vector<std::string_view>& known, std::string_view where) {
  for (const auto& [name, value] : attributes) {
    bool found = false;
    for (std::string_view k : known) found |= (name == k);
    if (!found) {
      return InvalidArgumentError("unknown " + std::string(where) + " attribute '" + name + "'");
    }
  }
  return Status::Ok();
}

std::string Take(std::map<std::string, std::string>& attributes, const std::string& name) {
  auto it = attributes.find(name);
  if (it == attributes.end()) return {};
  return it->second;
}

Result<KeyStoreConfig> ParsePkcs11Uri(std::string_view rest) {
  KeyStoreConfig config;
  config.kind = KeyStoreKind::kPkcs11;
  const size_t question = rest.find('?');
  SIGIL_ASSIGN_OR_RETURN(auto path, ParseAttributes(rest.substr(0, question), ';', "pkcs11 URI"));
  std::map<std::string, std::string> query;
  if (question != std::string_view::npos) {
    SIGIL_ASSIGN_OR_RETURN(query, ParseAttributes(rest.substr(question + 1), '&', "pkcs11 URI query"));
  }
  if (query.count("pin-value") != 0) {
    return InvalidArgumentError(
        "pkcs11 URI carries pin-value: a PIN in a URI ends up in logs and process lists; "
        "use pin-source=file:/path or pin-source=env:NAME");
  }
  SIGIL_RETURN_IF_ERROR(RefuseUnknown(path, {"token", "serial"}, "pkcs11 URI"));
  SIGIL_RETURN_IF_ERROR(RefuseUnknown(query, {"module-path", "pin-source"}, "pkcs11 URI query"));
  config.token_label = Take(path, "token");
  config.token_serial = Take(path, "serial");
  config.module_path = Take(query, "module-path");
  const std::string pin_source = Take(query, "pin-source");
  if (pin_source.rfind("env:", 0) == 0) {
    config.pin_env = pin_source.substr(4);
  } else if (pin_source.rfind("file:", 0) == 0) {
    config.pin_file = pin_source.substr(5);
  } else if (!pin_source.empty()) {
    config.pin_file = pin_source;
  }
  return config;
}

Result<KeyStoreConfig> ParseTpmUri(std::string_view rest) {
  KeyStoreConfig config;
  config.kind = KeyStoreKind::kTpm;
  const size_t question = rest.rfind('?');
  config.tcti = std::string(rest.substr(0, question));
  if (question != std::string_view::npos) {
    SIGIL_ASSIGN_OR_RETURN(auto query, ParseAttributes(rest.substr(question + 1), '&', "tpm URI query"));
    SIGIL_RETURN_IF_ERROR(RefuseUnknown(query, {"data-dir", "auth-file"}, "tpm URI query"));
    config.data_dir = Take(query, "data-dir");
    config.auth_file = Take(query, "auth-file");
  }
  return config;
}

}  // namespace

Result<KeyStoreConfig> ParseKeyStoreUri(std::string_view uri) {
  const size_t colon = uri.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("key store URI '" + std::string(uri) +
                                "' has no scheme: expected soft:, pkcs11: or tpm:");
  }
  SIGIL_ASSIGN_OR_RETURN(KeyStoreKind kind, ParseKeyStoreKind(uri.substr(0, colon)));
  const std::string_view rest = uri.substr(colon + 1);
  switch (kind) {
    case KeyStoreKind::kSoft: {
      KeyStoreConfig config;
      SIGIL_ASSIGN_OR_RETURN(std::string dir, PercentDecode(rest));
      config.key_dir = dir;
      return config;
    }
    case KeyStoreKind::kPkcs11: return ParsePkcs11Uri(rest);
    case KeyStoreKind::kTpm: return ParseTpmUri(rest);
  }
  return InvalidArgumentError("unknown key store kind");
}

Result<std::shared_ptr<Signer>> KeyStore::FindOrCreateKey(std::string_view label, KeyType type) {
  auto found = FindKey(label);
  if (found.ok()) {
    if ((*found)->key_type() != type) {
      return Status(Code::kFailedPrecondition,
                    "key '" + std::string(label) + "' exists as " +
                        std::string(KeyTypeName((*found)->key_type())) + ", not " +
                        std::string(KeyTypeName(type)));
    }
    return found;
  }
  if (found.status().code() != Code::kNotFound) return found.status();
  return CreateKey(label, type);
}

Result<std::unique_ptr<KeyStore>> OpenKeyStore(const KeyStoreConfig& config) {
  Result<std::unique_ptr<KeyStore>> store = [&]() -> Result<std::unique_ptr<KeyStore>> {
    switch (config.kind) {
      case KeyStoreKind::kSoft: return OpenSoftKeyStore(config);
      case KeyStoreKind::kPkcs11: return OpenPkcs11KeyStore(config);
      case KeyStoreKind::kTpm: return OpenTpmKeyStore(config);
    }
    return InvalidArgumentError("unknown key store kind");
  }();
  if (!store.ok()) {
    return std::move(store).status().AddContext("opening " +
                                                std::string(KeyStoreKindName(config.kind)) +
                                                " key store");
  }
  return store;
}

Result<std::unique_ptr<KeyStore>> OpenKeyStore(std::string_view uri) {
  SIGIL_ASSIGN_OR_RETURN(KeyStoreConfig config, ParseKeyStoreUri(uri));
  return OpenKeyStore(config);
}

void ReadKeyStoreConfig(ConfigSection section, KeyStoreConfig& config) {
  if (section.Has("uri")) {
    std::string uri;
    section.Read("uri", uri);
    auto parsed = ParseKeyStoreUri(uri);
    if (!parsed.ok()) {
      section.Problem("uri", parsed.status().message());
    } else {
      config = *parsed;
    }
    section.RefuseUnknownKeys();
    return;
  }
  std::string kind(KeyStoreKindName(config.kind));
  section.ReadChoice("kind", kind, {"soft", "pkcs11", "tpm"});
  config.kind = *ParseKeyStoreKind(kind);
  std::string value;
  auto read_path = [&](const char* key, std::filesystem::path& path) {
    value = path.string();
    section.Read(key, value);
    path = value;
  };
  read_path("key_dir", config.key_dir);
  read_path("module_path", config.module_path);
  section.Read("token_label", config.token_label);
  section.Read("token_serial", config.token_serial);
  read_path("pin_file", config.pin_file);
  section.Read("pin_env", config.pin_env);
  if (section.Has("pin")) {
    section.Problem("pin", "a PIN in the config file ends up in backups and logs; use pin_file or pin_env");
  }
  section.Read("tcti", config.tcti);
  read_path("data_dir", config.data_dir);
  read_path("auth_file", config.auth_file);
  section.RefuseUnknownKeys();
}

Status ValidateKeyLabel(std::string_view label) {
  if (label.empty() || label.size() > 64) {
    return InvalidArgumentError("key label must be 1 to 64 characters, got " +
                                std::to_string(label.size()));
  }
  if (label[0] == '.') return InvalidArgumentError("key label '" + std::string(label) + "' starts with '.'");
  for (char c : label) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return InvalidArgumentError("key label '" + std::string(label) + "' has character '" +
                                  std::string(1, c) + "': allowed are letters, digits, '.', '_', '-'");
    }
  }
  return Status::Ok();
}

}  // namespace sigil::hw
