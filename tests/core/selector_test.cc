#include "core/selector.h"

#include <gtest/gtest.h>

namespace sigil {
namespace {

SelectorSet Set(std::vector<std::string> texts) {
  auto s = SelectorSet::Parse(texts);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.value_or(SelectorSet());
}

TEST(Selector, SplitsAtTheFirstColonOnly) {
  auto s = Selector::Parse("k8s:pod-label:app:web");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->type, "k8s");
  EXPECT_EQ(s->value, "pod-label:app:web");
  EXPECT_EQ(s->str(), "k8s:pod-label:app:web");

  auto uid = Selector::Parse("unix:uid:1001");
  ASSERT_TRUE(uid.ok());
  EXPECT_EQ(uid->type, "unix");
  EXPECT_EQ(uid->value, "uid:1001");
}

TEST(Selector, RejectsMalformedWithReason) {
  struct Case {
    std::string text;
    std::string reason;
  };
  for (const Case& c : {Case{"unix", "type:value"}, Case{":uid:1", "empty type"},
                        Case{"unix:", "empty value"}, Case{"", "type:value"},
                        Case{"unix:uid\n:1", "control character"}}) {
    auto s = Selector::Parse(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.reason), std::string::npos) << s.status().message();
  }
  EXPECT_FALSE((Selector{"a:b", "c"}.Validate().ok()));
}

TEST(SelectorSet, SortsAndDeduplicates) {
  SelectorSet s = Set({"unix:uid:1", "unix:gid:2", "unix:uid:1"});
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s.items()[0].str(), "unix:gid:2");
  EXPECT_EQ(s, Set({"unix:gid:2", "unix:uid:1"}));
  EXPECT_FALSE(SelectorSet::Parse({"unix:uid:1", "broken"}).ok());
}

TEST(EntryMatchesWorkload, EveryEntrySelectorMustBeAmongTheWorkloads) {
  SelectorSet workload = Set({"unix:uid:1001", "unix:gid:100", "unix:user:web"});
  EXPECT_TRUE(EntryMatchesWorkload(Set({"unix:uid:1001"}), workload));
  EXPECT_TRUE(EntryMatchesWorkload(Set({"unix:uid:1001", "unix:gid:100"}), workload));
  EXPECT_TRUE(EntryMatchesWorkload(workload, workload));
  EXPECT_FALSE(EntryMatchesWorkload(Set({"unix:uid:1001", "unix:gid:0"}), workload));
  EXPECT_FALSE(EntryMatchesWorkload(Set({"unix:uid:1002"}), workload));
  EXPECT_FALSE(EntryMatchesWorkload(Set({"unix:uid:1001"}), Set({})));
  EXPECT_FALSE(EntryMatchesWorkload(Set({}), workload)) << "an entry without selectors matches nothing";
}

TEST(SelectorsMatch, FollowsEntryShowModes) {
  SelectorSet entry = Set({"a:1", "b:2"});
  struct Case {
    std::vector<std::string> query;
    bool exact, subset, superset, any;
  };
  for (const Case& c : {
           Case{{"a:1", "b:2"}, true, true, true, true},
           Case{{"a:1", "b:2", "c:3"}, false, true, false, true},
           Case{{"a:1"}, false, false, true, true},
           Case{{"c:3"}, false, false, false, false},
           Case{{"a:1", "c:3"}, false, false, false, true},
       }) {
    SelectorSet q = Set(c.query);
    EXPECT_EQ(SelectorsMatch(entry, q, SelectorMatch::kExact), c.exact) << c.query.size();
    EXPECT_EQ(SelectorsMatch(entry, q, SelectorMatch::kSubset), c.subset) << c.query.size();
    EXPECT_EQ(SelectorsMatch(entry, q, SelectorMatch::kSuperset), c.superset) << c.query.size();
    EXPECT_EQ(SelectorsMatch(entry, q, SelectorMatch::kAny), c.any) << c.query.size();
  }
  EXPECT_EQ(*ParseSelectorMatch("superset"), SelectorMatch::kSuperset);
  auto bad = ParseSelectorMatch("most");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'most'"), std::string::npos);
}

}  // namespace
}  // namespace sigil
