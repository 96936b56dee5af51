#include "agentd/cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace sigil::agentd {

namespace {

// spire-agent's protojson printer removes the nulls an unset message field marshals to, in
// objects and in lists at any depth.
void RemoveNulls(nlohmann::json& value) {
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end();) {
      if (it->is_null()) {
        it = value.erase(it);
      } else {
        RemoveNulls(*it);
        ++it;
      }
    }
  } else if (value.is_array()) {
    nlohmann::json kept = nlohmann::json::array();
    for (auto& element : value) {
      if (element.is_null()) continue;
      RemoveNulls(element);
      kept.push_back(std::move(element));
    }
    value = std::move(kept);
  }
}

// Go's encoding/json escapes what could end an HTML script element, and the two line
// separators JavaScript does not take in a string. Outside strings JSON has none of them.
std::string GoHtmlEscaped(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xe2' && i + 2 < json.size() && json[i + 1] == '\x80' &&
               (json[i + 2] == '\xa8' || json[i + 2] == '\xa9')) {
      out += json[i + 2] == '\xa8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Result<nlohmann::json> AsSpireJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  if (auto status = google::protobuf::util::MessageToJsonString(message, &text, options); !status.ok()) {
    return InternalError("could not print the agent's " + message.GetDescriptor()->name() + " as JSON: " +
                         status.ToString());
  }
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  if (value.is_discarded()) return InternalError("protobuf printed " + message.GetDescriptor()->name() + " as invalid JSON");
  RemoveNulls(value);
  return value;
}

}  // namespace

Result<OutputFormat> ParseOutputFormat(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "json") return OutputFormat::kJson;
  if (lower == "pretty" || lower == "prettyprint") return OutputFormat::kPretty;
  return InvalidArgumentError("unknown format option: \"" + std::string(name) + "\": expected pretty or json");
}

Result<std::string> WorkloadApiJson(const std::vector<const google::protobuf::Message*>& messages) {
  nlohmann::json all = nlohmann::json::array();
  for (const auto* message : messages) {
    SIGIL_ASSIGN_OR_RETURN(nlohmann::json value, AsSpireJson(*message));
    all.push_back(std::move(value));
  }
  const nlohmann::json& printed = all.size() == 1 ? all[0] : all;
  return GoHtmlEscaped(printed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) + "\n";
}

}  // namespace sigil::agentd
