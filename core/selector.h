// Selectors ("unix:uid:1001"): a type and a value, split at the first ':' so that the value may
// itself hold ':' ("k8s:pod-label:app:web" is type "k8s", value "pod-label:app:web").
//
// An entry matches a workload when every selector of the entry is among the workload's
// selectors (SPIRE's rule). Operators query entries with the other modes of SPIRE's
// `entry show -matchSelectorsOn`.
// Thread safety: values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace sigil {

struct Selector {
  std::string type;
  std::string value;

  static Result<Selector> Parse(std::string_view text);
  std::string str() const { return type + ":" + value; }
  Status Validate() const;

  friend bool operator==(const Selector&, const Selector&) = default;
  friend auto operator<=>(const Selector&, const Selector&) = default;
};

// A sorted set without duplicates, so that equality and subset tests are linear.
class SelectorSet {
 public:
  SelectorSet() = default;
  explicit SelectorSet(std::vector<Selector> selectors);
  static Result<SelectorSet> Parse(const std::vector<std::string>& texts);

  const std::vector<Selector>& items() const { return items_; }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  bool Contains(const Selector& s) const;
  bool IsSubsetOf(const SelectorSet& other) const;
  bool Intersects(const SelectorSet& other) const;

  friend bool operator==(const SelectorSet&, const SelectorSet&) = default;

 private:
  std::vector<Selector> items_;
};

// SPIRE's workload rule: all of the entry's selectors are among the workload's.
// An entry without selectors matches nothing.
bool EntryMatchesWorkload(const SelectorSet& entry_selectors, const SelectorSet& workload);

// The modes of `entry show -matchSelectorsOn`.
enum class SelectorMatch {
  kExact,     // the entry has exactly the queried selectors
  kSubset,    // the entry's selectors are a subset of the queried ones
  kSuperset,  // the entry's selectors include all the queried ones
  kAny,       // the entry has at least one of the queried selectors
};
Result<SelectorMatch> ParseSelectorMatch(std::string_view name);
bool SelectorsMatch(const SelectorSet& entry_selectors, const SelectorSet& query,
                    SelectorMatch mode);

}  // namespace sigil
