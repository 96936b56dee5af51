// Selectors as `-selector type:value` flags, entry JSON and workload attestors give them; one
// per line, the lines also parsed as one set and matched in every mode.
#include <string>
#include <vector>

#include "core/selector.h"
#include "tests/fuzz/fuzz_support.h"

using namespace sigil;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz::AsText(data, size);
  std::vector<std::string> lines;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::vector<Selector> parsed;
  for (const std::string& line : lines) {
    auto selector = Selector::Parse(line);
    if (!selector.ok()) continue;
    FUZZ_CHECK(selector->Validate().ok());
    auto again = Selector::Parse(selector->str());
    FUZZ_CHECK(again.ok() && *again == *selector);
    parsed.push_back(*selector);
  }
  (void)ParseSelectorMatch(lines.front());
  auto set = SelectorSet::Parse(lines);
  const SelectorSet some(parsed);
  FUZZ_CHECK(EntryMatchesWorkload(some, some) == !some.empty());
  if (set.ok()) {
    FUZZ_CHECK(set->IsSubsetOf(*set));
    for (auto mode : {SelectorMatch::kExact, SelectorMatch::kSubset, SelectorMatch::kSuperset, SelectorMatch::kAny}) {
      (void)SelectorsMatch(*set, some, mode);
    }
  }
  return 0;
}
