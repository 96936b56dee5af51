// Unix workload attestation of real processes: this test's own and a child's.
#include "agentd/attestor/unix_attestor.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <sys/stat.h>

#include <fstream>
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

std::string PathOf(const std::vector<Selector>& selectors) {
  for (const auto& s : selectors) {
    if (s.value.starts_with("path:")) return s.value.substr(5);
  }
  return "";
}

// A caller whose groups came with its connection is remembered for its next calls, and only
// while it is the same process running the same binary with the same credentials.
TEST(UnixAttestorTest, RemembersACallerOnlyWhileItIsTheSameProcessAndBinary) {
  sigil::testing::TempDir dir("sigil-attest");
  const std::string fifo = (dir.path() / "go").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // The shell waits on the FIFO, then becomes another program under the same pid.
  auto child = sigil::testing::ChildProcess::Start({"sh", "-c", "read line < " + fifo + "; exec sleep 30"}, dir.path());
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  const std::vector<gid_t> groups = {4242};
  UnixWorkloadAttestor attestor;

  auto as_shell = attestor.Attest(child->pid(), ::getuid(), ::getgid(), groups);
  ASSERT_TRUE(as_shell.ok()) << as_shell.status().ToString();
  const std::string shell = PathOf(*as_shell);
  ASSERT_FALSE(shell.empty());
  EXPECT_FALSE(shell.ends_with("/sleep")) << shell;
  EXPECT_EQ(attestor.remembered_processes(), 1u);
  auto again = attestor.AttestIfHashed(child->pid(), ::getuid(), ::getgid(), groups);
  ASSERT_TRUE(again.has_value() && again->ok());
  EXPECT_EQ(**again, *as_shell);

  // Other credentials on the same pid are attested for themselves.
  auto other_gid = attestor.Attest(child->pid(), ::getuid(), 4343, groups);
  ASSERT_TRUE(other_gid.ok());
  EXPECT_TRUE(Has(*other_gid, "gid:4343"));
  EXPECT_FALSE(Has(*other_gid, "gid:" + std::to_string(::getgid())));
  EXPECT_EQ(attestor.remembered_processes(), 2u);

  {
    std::ofstream go(fifo);
    go << "go\n";
  }
  char target[4096] = {};
  const std::string exe = "/proc/" + std::to_string(child->pid()) + "/exe";
  ASSERT_TRUE(sigil::testing::WaitUntil([&] {
    const ssize_t n = ::readlink(exe.c_str(), target, sizeof(target) - 1);
    return n > 0 && std::string(target, static_cast<size_t>(n)).ends_with("/sleep");
  }));
  auto as_sleep = attestor.Attest(child->pid(), ::getuid(), ::getgid(), groups);
  ASSERT_TRUE(as_sleep.ok()) << as_sleep.status().ToString();
  EXPECT_TRUE(PathOf(*as_sleep).ends_with("/sleep")) << PathOf(*as_sleep);
  EXPECT_NE(*as_sleep, *as_shell);

  // Gone, it is not found, however recently it was attested.
  const pid_t pid = child->pid();
  child->Stop(9);
  auto gone = attestor.AttestIfHashed(pid, ::getuid(), ::getgid(), groups);
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->status().code(), Code::kNotFound);
}

// A workload with many connections: each connection's calls reuse the process's attestation,
// and an exec after the connections opened is seen on every one of them.
TEST(UnixAttestorTest, ConnectionsOfOneProcessShareItsAttestationAndEachSeesAnExec) {
  sigil::testing::TempDir dir("sigil-attest");
  const std::string fifo = (dir.path() / "go").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto child = sigil::testing::ChildProcess::Start({"sh", "-c", "read line < " + fifo + "; exec sleep 30"}, dir.path());
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  const auto connection = [&] {
    return transport::PeerCredentials{.pid = child->pid(), .uid = ::getuid(), .gid = ::getgid(),
                                      .supplementary_groups = std::vector<gid_t>{4242},
                                      .process = transport::PeerProcess::Hold(child->pid())};
  };
  std::vector<transport::PeerCredentials> connections = {connection(), connection(), connection()};
  UnixWorkloadAttestor attestor;
  auto first = attestor.Attest(connections[0]);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  for (int round = 0; round < 2; ++round) {
    for (const auto& caller : connections) {
      std::optional<transport::PeerProcess::ExecutableKey> binary_now;
      ASSERT_TRUE(caller.process->StillTheCaller(&binary_now).ok());
      auto reused = attestor.AttestWithoutBlocking(caller, binary_now);
      ASSERT_TRUE(reused.has_value()) << "connection of the same process was attested anew";
      ASSERT_TRUE(reused->ok()) << reused->status().ToString();
      EXPECT_EQ(**reused, *first);
    }
  }
  EXPECT_EQ(attestor.remembered_processes(), 1u);

  {
    std::ofstream go(fifo);
    go << "go\n";
  }
  const std::string exe = "/proc/" + std::to_string(child->pid()) + "/exe";
  ASSERT_TRUE(sigil::testing::WaitUntil([&] {
    char target[4096] = {};
    const ssize_t n = ::readlink(exe.c_str(), target, sizeof(target) - 1);
    return n > 0 && std::string(target, static_cast<size_t>(n)).ends_with("/sleep");
  }));
  for (const auto& caller : connections) {
    std::optional<transport::PeerProcess::ExecutableKey> binary_now;
    EXPECT_EQ(caller.process->StillTheCaller(&binary_now).code(), Code::kPermissionDenied);
    auto after_exec = attestor.AttestWithoutBlocking(caller, std::nullopt);
    ASSERT_TRUE(after_exec.has_value());
    EXPECT_EQ(after_exec->status().code(), Code::kPermissionDenied) << after_exec->status().ToString();
  }
}

}  // namespace
}  // namespace sigil::agentd
