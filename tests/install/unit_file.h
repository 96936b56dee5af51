// Reading the systemd units and sysusers.d files Sigil installs, for the tests of tests/install.
#pragma once

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace sigil::testing {

// The settings of a unit file: every `Key=Value` line, by key, in the order written (a key may
// be given several times). Comments and section headers are left out; sections are not told
// apart, since no key Sigil's units use appears in two of them.
class UnitFile {
 public:
  static UnitFile Read(const std::filesystem::path& path) { return Parse(ReadFile(path)); }
  static UnitFile Parse(const std::string& text) {
    UnitFile unit;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#' || line[0] == ';' || line[0] == '[') continue;
      const size_t equals = line.find('=');
      if (equals == std::string::npos) continue;
      unit.values_[line.substr(0, equals)].push_back(line.substr(equals + 1));
    }
    return unit;
  }

  // The last value given for `key` ("" when none).
  std::string Get(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() || it->second.empty() ? "" : it->second.back();
  }
  // Every value given for `key`, in order.
  std::vector<std::string> All(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

// The words of `text`, split at blanks.
inline std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

}  // namespace sigil::testing
