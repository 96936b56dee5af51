#include "core/selector.h"

#include <algorithm>

namespace sigil {

Result<Selector> Selector::Parse(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("selector '" + std::string(text) +
                                "' must be of the form type:value");
  }
  Selector s{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  SIGIL_RETURN_IF_ERROR(s.Validate());
  return s;
}

Status Selector::Validate() const {
  if (type.empty()) return InvalidArgumentError("selector '" + str() + "' has an empty type");
  if (type.find(':') != std::string::npos) {
    return InvalidArgumentError("selector type '" + type + "' contains ':'");
  }
  if (value.empty()) return InvalidArgumentError("selector '" + str() + "' has an empty value");
  for (char c : type + value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgumentError("selector '" + type + ":…' contains a control character");
    }
  }
  return Status::Ok();
}

SelectorSet::SelectorSet(std::vector<Selector> selectors) : items_(std::move(selectors)) {
  std::sort(items_.begin(), items_.end());
  items_.erase(std::unique(items_.begin(), items_.end()), items_.end());
}

Result<SelectorSet> SelectorSet::Parse(const std::vector<std::string>& texts) {
  std::vector<Selector> parsed;
  parsed.reserve(texts.size());
  for (const auto& t : texts) {
    SIGIL_ASSIGN_OR_RETURN(Selector s, Selector::Parse(t));
    parsed.push_back(std::move(s));
  }
  return SelectorSet(std::move(parsed));
}

bool SelectorSet::Contains(const Selector& s) const {
  return std::binary_search(items_.begin(), items_.end(), s);
}

bool SelectorSet::IsSubsetOf(const SelectorSet& other) const {
  return std::includes(other.items_.begin(), other.items_.end(), items_.begin(), items_.end());
}

bool SelectorSet::Intersects(const SelectorSet& other) const {
  auto a = items_.begin();
  auto b = other.items_.begin();
  while (a != items_.end() && b != other.items_.end()) {
    if (*a == *b) return true;
    if (*a < *b) {
      ++a;
    } else {
      ++b;
    }
  }
  return false;
}

bool EntryMatchesWorkload(const SelectorSet& entry_selectors, const SelectorSet& workload) {
  return !entry_selectors.empty() && entry_selectors.IsSubsetOf(workload);
}

Result<SelectorMatch> ParseSelectorMatch(std::string_view name) {
  if (name == "exact") return SelectorMatch::kExact;
  if (name == "subset") return SelectorMatch::kSubset;
  if (name == "superset") return SelectorMatch::kSuperset;
  if (name == "any") return SelectorMatch::kAny;
  return InvalidArgumentError("unknown selector match '" + std::string(name) +
                              "': expected exact, subset, superset or any");
}

bool SelectorsMatch(const SelectorSet& entry_selectors, const SelectorSet& query,
                    SelectorMatch mode) {
  switch (mode) {
    case SelectorMatch::kExact: return entry_selectors == query;
    case SelectorMatch::kSubset: return entry_selectors.IsSubsetOf(query);
    case SelectorMatch::kSuperset: return query.IsSubsetOf(entry_selectors);
    case SelectorMatch::kAny: return entry_selectors.Intersects(query);
  }
  return false;
}

}  // namespace sigil
