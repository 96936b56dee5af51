// Unix workload attestation of real processes: this test's own and a child's.
#include "agentd/unix_attestor.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <set>

#include "core/openssl_util.h"
#include "tests/support/process.h"

namespace sigil::agentd {
namespace {

bool Has(const std::vector<Selector>& selectors, const std::string& value) {
  for (const auto& s : selectors) {
    if (s.type == "unix" && s.value == value) return true;
  }
  return false;
}

TEST(UnixAttestorTest, AttestsThisProcess) {
  UnixWorkloadAttestor attestor;
  auto selectors = attestor.Attest(::getpid(), ::getuid(), ::getgid());
  ASSERT_TRUE(selectors.ok()) << selectors.status().ToString();
  EXPECT_TRUE(Has(*selectors, "uid:" + std::to_string(::getuid())));
  EXPECT_TRUE(Has(*selectors, "gid:" + std::to_string(::getgid())));
  if (::getuid() == 0) {
    EXPECT_TRUE(Has(*selectors, "user:root"));
  }

  char self[4096];
  const ssize_t length = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(length, 0);
  const std::string path(self, static_cast<size_t>(length));
  EXPECT_TRUE(Has(*selectors, "path:" + path));

  const std::string binary = sigil::testing::ReadFile(path);
  const std::string expected = HexEncode(Sha256({reinterpret_cast<const uint8_t*>(binary.data()), binary.size()}));
  EXPECT_TRUE(Has(*selectors, "sha256:" + expected));
  EXPECT_EQ(attestor.cached_hashes(), 1u);
  ASSERT_TRUE(attestor.Attest(::getpid(), ::getuid(), ::getgid()).ok());
  EXPECT_EQ(attestor.cached_hashes(), 1u);  // the same binary is hashed once
}

TEST(UnixAttestorTest, AttestsWithoutHashingOnlyAKnownBinary) {
  UnixWorkloadAttestor attestor;
  EXPECT_FALSE(attestor.AttestIfHashed(::getpid(), ::getuid(), ::getgid()).has_value());
  EXPECT_EQ(attestor.cached_hashes(), 0u);
  auto full = attestor.Attest(::getpid(), ::getuid(), ::getgid());
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  auto known = attestor.AttestIfHashed(::getpid(), ::getuid(), ::getgid());
  ASSERT_TRUE(known.has_value());
  ASSERT_TRUE(known->ok()) << known->status().ToString();
  EXPECT_EQ(**known, *full);

  sigil::testing::TempDir dir("sigil-attest");
  auto child = sigil::testing::ChildProcess::Start({"sleep", "30"}, dir.path());
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_FALSE(attestor.AttestIfHashed(child->pid(), ::getuid(), ::getgid()).has_value());  // another binary
  const pid_t pid = child->pid();
  child->Stop();
  auto gone = attestor.AttestIfHashed(pid, ::getuid(), ::getgid());
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->status().code(), Code::kNotFound);
}

TEST(UnixAttestorTest, AttestsAnotherProgramByItsBinary) {
  sigil::testing::TempDir dir("sigil-attest");
  auto child = sigil::testing::ChildProcess::Start({"sleep", "30"}, dir.path());
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  UnixWorkloadAttestor attestor;
  auto selectors = attestor.Attest(child->pid(), ::getuid(), ::getgid());
  ASSERT_TRUE(selectors.ok()) << selectors.status().ToString();
  bool found_sleep = false;
  for (const auto& s : *selectors) found_sleep |= s.value.starts_with("path:") && s.value.ends_with("/sleep");
  EXPECT_TRUE(found_sleep);
  const pid_t pid = child->pid();
  child->Stop();
  auto gone = attestor.Attest(pid, ::getuid(), ::getgid());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
}

TEST(UnixAttestorTest, SupplementaryGroupsComeFromTheConnectionOrProc) {
  std::vector<gid_t> groups(::getgroups(0, nullptr));
  ASSERT_EQ(::getgroups(static_cast<int>(groups.size()), groups.data()), static_cast<int>(groups.size()));
  UnixWorkloadAttestor attestor;
  auto selectors = attestor.Attest(::getpid(), ::getuid(), ::getgid());
  ASSERT_TRUE(selectors.ok());
  for (gid_t gid : groups) EXPECT_TRUE(Has(*selectors, "supplementary_gid:" + std::to_string(gid))) << gid;
  size_t supplementary = 0;
  for (const auto& s : *selectors) supplementary += s.value.starts_with("supplementary_gid:");
  EXPECT_EQ(supplementary, std::set<gid_t>(groups.begin(), groups.end()).size());

  // The groups a connection carries (SO_PEERGROUPS) are taken as they are.
  auto from_connection = attestor.Attest(::getpid(), ::getuid(), ::getgid(), std::vector<gid_t>{4242});
  ASSERT_TRUE(from_connection.ok());
  EXPECT_TRUE(Has(*from_connection, "supplementary_gid:4242"));
  for (gid_t gid : groups) {
    if (gid != 4242) {
      EXPECT_FALSE(Has(*from_connection, "supplementary_gid:" + std::to_string(gid)));
    }
  }
}

}  // namespace
}  // namespace sigil::agentd
