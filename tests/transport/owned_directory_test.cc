// The directories the daemons keep sockets and state in: made by the daemon, or refused when
// another user made them or can write them. Runs as root (as CI does): it hands directories to
// another uid with chown, as a local attacker's own mkdir would.
#include "transport/owned_directory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/process.h"

namespace sigil::transport {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr uid_t kOtherUid = 65534;  // nobody

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class OwnedDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests hand directories to another uid, which takes root";
  }
  TempDir dir_{"sigil-owned-dir"};
};

TEST_F(OwnedDirectoryTest, MissingDirectoriesAreMadeWithTheirModeWhateverTheUmask) {
  const mode_t old_umask = ::umask(0077);
  const fs::path socket_dir = dir_ / "sigil-agent" / "public";
  Status made = EnsureOwnedDirectory(socket_dir, 0755, "socket directory");
  ::umask(old_umask);
  ASSERT_TRUE(made.ok()) << made.ToString();
  EXPECT_EQ(ModeOf(socket_dir), 0755u);
  EXPECT_EQ(ModeOf(dir_ / "sigil-agent"), 0755u);
  // Made once, it is trusted on every later start, and its mode is left as it is.
  ASSERT_EQ(::chmod(socket_dir.c_str(), 0700), 0);
  EXPECT_TRUE(EnsureOwnedDirectory(socket_dir, 0755, "socket directory").ok());
  EXPECT_EQ(ModeOf(socket_dir), 0700u);
}

TEST_F(OwnedDirectoryTest, ADirectoryAnotherUserMadeIsRefusedNamingItAndTheFix) {
  const fs::path squatted = dir_ / "public";
  ASSERT_EQ(::mkdir(squatted.c_str(), 0755), 0);
  ASSERT_EQ(::chown(squatted.c_str(), kOtherUid, kOtherUid), 0);
  Status refused = EnsureOwnedDirectory(squatted, 0755, "Workload API socket directory");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find("Workload API socket directory"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find(squatted.string() + " is owned by uid 65534"), std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("remove it"), std::string::npos) << refused.message();
  // Nothing was made under it.
  EXPECT_TRUE(fs::is_empty(squatted));
}

TEST_F(OwnedDirectoryTest, ADirectoryAboveThatAnotherUserOwnsIsRefused) {
  const fs::path above = dir_ / "sigil-agent";
  ASSERT_EQ(::mkdir(above.c_str(), 0755), 0);
  ASSERT_EQ(::chown(above.c_str(), kOtherUid, kOtherUid), 0);
  Status refused = EnsureOwnedDirectory(above / "public", 0755, "socket directory");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(above.string() + " is owned by uid 65534"), std::string::npos)
      << refused.message();
  EXPECT_FALSE(fs::exists(above / "public")) << "nothing is made under an untrusted directory";
}

TEST_F(OwnedDirectoryTest, ADirectoryOthersCanWriteIsRefusedUnlessItIsRootsAndSticky) {
  const fs::path open_dir = dir_ / "open";
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  Status refused = EnsureOwnedDirectory(open_dir / "private", 0700, "data_dir");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find("writable by its group or by others (mode 0777)"), std::string::npos)
      << refused.message();
  EXPECT_NE(refused.message().find("chmod go-w " + open_dir.string()), std::string::npos) << refused.message();

  const fs::path group_writable = dir_ / "group";
  ASSERT_EQ(::mkdir(group_writable.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(group_writable.c_str(), 0770), 0);
  EXPECT_EQ(EnsureOwnedDirectory(group_writable, 0700, "data_dir").code(), Code::kFailedPrecondition);

  // /tmp's kind: root's and sticky, so others may add entries but not replace the daemon's.
  const fs::path sticky = dir_ / "tmp";
  ASSERT_EQ(::mkdir(sticky.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(sticky.c_str(), 01777), 0);
  Status made = EnsureOwnedDirectory(sticky / "sigil-agent" / "public", 0755, "socket directory");
  EXPECT_TRUE(made.ok()) << made.ToString();
  // Sticky but another user's is not root's promise.
  ASSERT_EQ(::chown(sticky.c_str(), kOtherUid, kOtherUid), 0);
  EXPECT_EQ(EnsureOwnedDirectory(sticky / "sigil-agent" / "public", 0755, "socket directory").code(),
            Code::kFailedPrecondition);
}

TEST_F(OwnedDirectoryTest, ALinkOnTheWayIsHeldToTheSameOwnersAndSoIsWhereItLeads) {
  const fs::path real = dir_ / "real";
  ASSERT_EQ(::mkdir(real.c_str(), 0755), 0);
  const fs::path link = dir_ / "link";
  fs::create_symlink(real, link);
  EXPECT_TRUE(EnsureOwnedDirectory(link / "public", 0755, "socket directory").ok());
  EXPECT_TRUE(fs::is_directory(real / "public"));

  // A link another user made, even to a good directory, can be pointed elsewhere by them.
  ASSERT_EQ(::lchown(link.c_str(), kOtherUid, kOtherUid), 0);
  Status refused = EnsureOwnedDirectory(link / "public", 0755, "socket directory");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(link.string() + " is owned by uid 65534"), std::string::npos) << refused.message();

  // A root-owned link into another user's directory leads to what that user controls.
  const fs::path theirs = dir_ / "theirs";
  ASSERT_EQ(::mkdir(theirs.c_str(), 0755), 0);
  ASSERT_EQ(::chown(theirs.c_str(), kOtherUid, kOtherUid), 0);
  const fs::path link_to_theirs = dir_ / "link-to-theirs";
  fs::create_symlink(theirs, link_to_theirs);
  refused = EnsureOwnedDirectory(link_to_theirs, 0755, "socket directory");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(theirs.string() + " is owned by uid 65534"), std::string::npos) << refused.message();
}

TEST_F(OwnedDirectoryTest, AFileInTheWayIsRefused) {
  const fs::path file = dir_ / "file";
  testing::WriteFile(file, "x");
  Status refused = EnsureOwnedDirectory(file / "public", 0755, "socket directory");
  ASSERT_EQ(refused.code(), Code::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(file.string() + " is not a directory"), std::string::npos) << refused.message();
}

}  // namespace
}  // namespace sigil::transport
