#include "core/swappable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace sigil {
namespace {

TEST(SwappableTest, AReaderKeepsTheValueItTookAfterASwap) {
  Swappable<std::string> value(std::make_shared<const std::string>("first"));
  std::shared_ptr<const std::string> held = value.Current();
  value.Set(std::make_shared<const std::string>("second"));
  EXPECT_EQ(*held, "first");
  EXPECT_EQ(*value.Current(), "second");
  EXPECT_EQ(held.use_count(), 1);  // the Swappable let go of the old value
}

TEST(SwappableTest, StartsEmptyWhenGivenNothing) {
  Swappable<int> value;
  EXPECT_EQ(value.Current(), nullptr);
}

// Readers on other threads see only whole values, each one a writer set.
TEST(SwappableTest, ReadersSeeOnlyValuesThatWereSet) {
  Swappable<std::vector<int>> value(std::make_shared<const std::vector<int>>(100, 0));
  std::atomic<bool> done = false;
  std::atomic<int> torn = 0;
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        auto seen = value.Current();
        for (int v : *seen) torn += v != seen->front();
      }
    });
  }
  for (int i = 1; i <= 2000; ++i) value.Set(std::make_shared<const std::vector<int>>(100, i));
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(value.Current()->front(), 2000);
}

}  // namespace
}  // namespace sigil
