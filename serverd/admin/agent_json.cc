#include "serverd/admin/agent_json.h"

#include <ctime>

#include "serverd/admin/entry_json.h"
#include "serverd/admin/field_reader.h"

namespace sigil::serverd {

using nlohmann::json;

json AgentToJson(const AttestedAgent& a) {
  return json{
      {"id", SpiffeIdToJson(a.spiffe_id)},
      {"attestation_type", a.attestation_type},
      {"x509svid_serial_number", a.serial},
      {"x509svid_expires_at", std::to_string(a.expires_at)},
      {"selectors", SelectorsToJson(a.selectors)},
      {"banned", a.banned},
      {"can_reattest", AgentCanReattest(a)},
      {"created_at", std::to_string(a.created_at)},
  };
}

Result<AttestedAgent> AgentFromJson(const json& object) {
  AttestedAgent a;
  FieldReader r(object, "agent");
  if (object.is_object()) {
    r.Id("id", a.spiffe_id);
    r.String("attestation_type", a.attestation_type);
    r.String("x509svid_serial_number", a.serial);
    r.Int("x509svid_expires_at", a.expires_at);
    r.Selectors("selectors", a.selectors);
    r.Bool("banned", a.banned);
    r.Int("created_at", a.created_at);
  }
  SIGIL_RETURN_IF_ERROR(r.Finish());
  return a;
}

Result<AgentFilter> AgentFilterFromJson(const json& body) {
  AgentFilter filter;
  const auto f = body.find("filter");
  if (f == body.end() || f->is_null()) return filter;
  FieldReader by(*f, "filter");
  std::string expires_before;
  if (f->is_object()) {
    by.OptionalString("by_attestation_type", filter.attestation_type);
    by.SelectorMatchObject("by_selector_match", filter.selectors, filter.match);
    by.OptionalBool("by_banned", filter.banned);
    by.OptionalBool("by_can_reattest", filter.can_reattest);
    by.String("by_expires_before", expires_before);
    if (!expires_before.empty()) {
      auto parsed = ParseExpiresBefore(expires_before);
      if (parsed.ok()) {
        filter.expires_before = *parsed;
      } else {
        by.Problem("by_expires_before", parsed.status().message());
      }
    }
  }
  SIGIL_RETURN_IF_ERROR(by.Finish());
  // SPIRE's API treats an empty attestation type as no filter.
  if (filter.attestation_type && filter.attestation_type->empty()) filter.attestation_type.reset();
  return filter;
}

namespace {

// Reads exactly `digits` decimal digits at `text[at]`.
bool Digits(std::string_view text, size_t at, size_t digits, int& out) {
  if (at + digits > text.size()) return false;
  out = 0;
  for (size_t i = at; i < at + digits; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

}  // namespace

Result<int64_t> ParseExpiresBefore(std::string_view text) {
  auto invalid = [&] {
    return InvalidArgumentError("'" + std::string(text) + "' is not a time as \"" +
                                std::string(kExpiresBeforeLayout) +
                                "\" (e.g. \"2026-12-05 10:00:00 +0000 +00\")");
  };
  // 2006-01-02 15:04:05 -0700 [-07]
  //           1111111111222222
  // 01234567890123456789012345
  std::tm utc{};
  int offset_hours = 0, offset_minutes = 0;
  if (text.size() < 25 || text[4] != '-' || text[7] != '-' || text[10] != ' ' || text[13] != ':' ||
      text[16] != ':' || text[19] != ' ' || (text[20] != '+' && text[20] != '-') ||
      !Digits(text, 0, 4, utc.tm_year) || !Digits(text, 5, 2, utc.tm_mon) ||
      !Digits(text, 8, 2, utc.tm_mday) || !Digits(text, 11, 2, utc.tm_hour) ||
      !Digits(text, 14, 2, utc.tm_min) || !Digits(text, 17, 2, utc.tm_sec) ||
      !Digits(text, 21, 2, offset_hours) || !Digits(text, 23, 2, offset_minutes)) {
    return invalid();
  }
  const std::string_view zone = text.substr(25);
  if (!zone.empty()) {
    // The repeated offset in hours, as Go prints "-07"; it must agree with the first.
    int zone_hours = 0;
    if (zone.size() != 4 || zone[0] != ' ' || zone[1] != text[20] ||
        !Digits(zone, 2, 2, zone_hours) || zone_hours != offset_hours) {
      return invalid();
    }
  }
  if (utc.tm_mon < 1 || utc.tm_mon > 12 || utc.tm_mday < 1 || utc.tm_mday > 31 ||
      utc.tm_hour > 23 || utc.tm_min > 59 || utc.tm_sec > 60 || offset_minutes > 59) {
    return invalid();
  }
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  const int64_t local = static_cast<int64_t>(timegm(&utc));
  const int64_t offset = (offset_hours * 3600 + offset_minutes * 60) * (text[20] == '-' ? -1 : 1);
  return local - offset;
}

}  // namespace sigil::serverd
