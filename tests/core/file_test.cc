#include "core/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/support/process.h"

namespace sigil {
namespace {

TEST(FileTest, ReadsAWholeFileLargerThanOneRead) {
  testing::TempDir dir;
  std::string contents(40000, 'x');
  contents[0] = '\0';
  contents.back() = 'y';
  testing::WriteFile(dir / "big", contents);
  auto read = ReadWholeFile(dir / "big", "test file");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, contents);
}

TEST(FileTest, AMissingFileIsNotFoundNamingWhatAndWhere) {
  testing::TempDir dir;
  auto read = ReadWholeFile(dir / "absent.yaml", "config file");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), Code::kNotFound);
  EXPECT_EQ(read.status().message(), "config file " + (dir / "absent.yaml").string() + " does not exist");
}

TEST(FileTest, AFolderIsAnErrorNamingIt) {
  testing::TempDir dir;
  auto read = ReadWholeFile(dir.path(), "config file");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().code(), Code::kNotFound);
  EXPECT_NE(read.status().message().find(dir.path().string()), std::string::npos);
}

}  // namespace
}  // namespace sigil
