// Two config trees (YAML::Node, as a YAML document or a translated SPIRE file gives them)
// compared, for tests that a SPIRE file and a YAML file say the same.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

namespace sigil::testing {

// "" when `a` and `b` are the same config tree: the same keys in any order, scalars of the same
// text (a quoted "8081" and a plain 8081 alike, as the config readers take them). Otherwise the
// first place they differ, as a dotted path.
inline std::string TreeDifference(const YAML::Node& a, const YAML::Node& b, const std::string& at = "") {
  const std::string where = at.empty() ? "(top)" : at;
  if (a.Type() != b.Type()) return where + ": of different kinds";
  if (a.IsScalar()) return a.Scalar() == b.Scalar() ? "" : where + ": '" + a.Scalar() + "' vs '" + b.Scalar() + "'";
  if (a.IsSequence()) {
    if (a.size() != b.size()) return where + ": lists of different lengths";
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::string d = TreeDifference(a[i], b[i], where + "[" + std::to_string(i) + "]"); !d.empty()) return d;
    }
    return "";
  }
  if (!a.IsMap()) return "";
  if (a.size() != b.size()) return where + ": " + std::to_string(a.size()) + " keys vs " + std::to_string(b.size());
  for (const auto& item : a) {
    const std::string key = item.first.Scalar();
    const std::string path = at.empty() ? key : at + "." + key;
    const YAML::Node& constant_b = b;  // const: a lookup adds no key
    if (!constant_b[key].IsDefined()) return path + ": missing from the second";
    if (std::string d = TreeDifference(item.second, constant_b[key], path); !d.empty()) return d;
  }
  return "";
}

}  // namespace sigil::testing
