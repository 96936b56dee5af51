// FieldReader: how the admin API's JSON readers take one object apart, collecting every
// problem by field name ("entries[2].x509_svid_ttl: expected a whole number") instead of
// stopping at the first or throwing. Shared by the readers of entry_json.cc and agent_json.cc.
//
// Thread safety: a reader is used by one thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cctype>
#include <charconv>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/selector.h"
#include "core/status.h"

namespace sigil::serverd {

// Reads the fields of one object, collecting problems by field name.
class FieldReader {
 public:
  using json = nlohmann::json;

  FieldReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  const json* Find(const char* key) {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  void String(const char* key, std::string& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_string()) return Problem(key, "expected a string");
    out = value->get<std::string>();
  }

  // SPIRE writes int64 fields as strings in JSON (protobuf's mapping); accept both, but only
  // values an int64 holds: a wider one is refused rather than wrapped or saturated.
  void Int(const char* key, int64_t& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (value->is_number_integer() && !value->is_number_unsigned()) {
      out = value->get<int64_t>();
      return;
    }
    if (value->is_number_unsigned()) {
      if (value->get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        out = static_cast<int64_t>(value->get<uint64_t>());
        return;
      }
      return Problem(key, "is larger than a 64-bit whole number holds");
    }
    if (value->is_string()) {
      const std::string& text = value->get_ref<const std::string&>();
      int64_t parsed = 0;
      const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
      if (!text.empty() && error == std::errc() && end == text.data() + text.size()) {
        out = parsed;
        return;
      }
      if (error == std::errc::result_out_of_range)
        return Problem(key, "is larger than a 64-bit whole number holds");
    }
    Problem(key, "expected a whole number");
  }

  void Bool(const char* key, bool& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_boolean()) return Problem(key, "expected true or false");
    out = value->get<bool>();
  }

  void StringList(const char* key, std::vector<std::string>& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return Problem(key, "expected a list of strings");
    std::vector<std::string> items;
    for (const auto& item : *value) {
      if (!item.is_string()) return Problem(key, "expected a list of strings");
      items.push_back(item.get<std::string>());
    }
    out = std::move(items);
  }

  // "spiffe://td/path" or {"trust_domain": "td", "path": "/path"}.
  void Id(const char* key, std::string& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (value->is_string()) {
      out = value->get<std::string>();
      return;
    }
    if (value->is_object() && value->contains("trust_domain") &&
        (*value)["trust_domain"].is_string()) {
      const std::string path = value->contains("path") && (*value)["path"].is_string()
                                   ? (*value)["path"].get<std::string>()
                                   : "";
      out = "spiffe://" + (*value)["trust_domain"].get<std::string>() + path;
      return;
    }
    Problem(key, "expected a SPIFFE ID string or {\"trust_domain\", \"path\"}");
  }

  void Selectors(const char* key, std::vector<Selector>& out) {
    const json* value = Find(key);
    if (value == nullptr) return;
    if (!value->is_array()) return Problem(key, "expected a list of {\"type\", \"value\"}");
    for (const auto& item : *value) {
      if (item.is_string()) {
        auto parsed = Selector::Parse(item.get<std::string>());
        if (!parsed.ok()) return Problem(key, parsed.status().message());
        out.push_back(*parsed);
      } else if (item.is_object() && item.contains("type") && item.contains("value") &&
                 item["type"].is_string() && item["value"].is_string()) {
        out.push_back({item["type"].get<std::string>(), item["value"].get<std::string>()});
      } else {
        return Problem(key, "expected a list of {\"type\", \"value\"}");
      }
    }
  }

  void OptionalString(const char* key, std::optional<std::string>& out) {
    if (Find(key) == nullptr) return;
    std::string value;
    String(key, value);
    out = std::move(value);
  }

  void OptionalBool(const char* key, std::optional<bool>& out) {
    if (Find(key) == nullptr) return;
    bool value = false;
    Bool(key, value);
    out = value;
  }

  // A match mode as SPIRE's API spells it ("MATCH_SUPERSET") or its CLI does ("superset").
  void Match(const char* key, SelectorMatch& out) {
    std::string name;
    String(key, name);
    if (name.empty()) return;
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.starts_with("match_")) lower.erase(0, 6);
    auto parsed = ParseSelectorMatch(lower);
    if (!parsed.ok()) return Problem(key, parsed.status().message());
    out = *parsed;
  }

  // SPIRE's SelectorMatch under `key`: {"selectors": [...], "match": "MATCH_SUPERSET"}.
  void SelectorMatchObject(const char* key, std::optional<SelectorSet>& selectors,
                           SelectorMatch& match) {
    const json* value = Find(key);
    if (value == nullptr) return;
    FieldReader inner(*value, where_ + "." + key);
    std::vector<Selector> items;
    if (value->is_object()) {
      inner.Selectors("selectors", items);
      inner.Match("match", match);
    }
    if (Status read = inner.Finish(); !read.ok()) {
      problems_ += (problems_.empty() ? "" : "; ") + read.message();
      return;
    }
    selectors = SelectorSet(std::move(items));
  }

  void Problem(const char* key, const std::string& message) {
    problems_ += (problems_.empty() ? "" : "; ") + where_ + "." + key + ": " + message;
  }

  Status Finish() const {
    if (!object_.is_object()) return InvalidArgumentError(where_ + ": expected an object");
    return problems_.empty() ? Status::Ok() : InvalidArgumentError(problems_);
  }

 private:
  const json& object_;
  std::string where_;
  std::string problems_;
};

}  // namespace sigil::serverd
