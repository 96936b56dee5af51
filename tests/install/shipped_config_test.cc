// The default configs Sigil installs in /etc/sigil parse with the daemons' own parsers, and
// name the folders their systemd units give the daemons: data_dir is the unit's
// StateDirectory, socket_path lies in its RuntimeDirectory, and the unit's user is the one its
// sysusers.d file makes, at home in that data_dir.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "agentd/agent_config.h"
#include "hw/tpm_devid.h"
#include "serverd/server_config.h"
#include "tests/install/unit_file.h"
#include "tests/support/process.h"

namespace sigil {
namespace {

using testing::ReadFile;
using testing::UnitFile;
using testing::Words;

const std::string kSource = SIGIL_SOURCE_ROOT;
const std::string kBuild = SIGIL_BUILD_ROOT;

bool IsUnder(const std::filesystem::path& path, const std::filesystem::path& dir) {
  const std::string p = path.lexically_normal().string();
  const std::string d = dir.lexically_normal().string();
  return p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/';
}

// The user a sysusers.d file makes ("u NAME - GECOS HOME") and its home.
struct SysUser {
  std::string name;
  std::string home;
};
SysUser UserOf(const std::string& sysusers) {
  std::istringstream lines(sysusers);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("u ", 0) != 0) continue;
    const auto words = Words(line);
    // u NAME ID "GECOS words" HOME: the home is the last word.
    return {words.at(1), words.back()};
  }
  return {};
}

TEST(ShippedConfigTest, ServerYamlParsesAndNamesTheUnitsFolders) {
  const auto config = serverd::ParseServerConfig(ReadFile(kSource + "/serverd/dist/server.yaml"), "server.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const UnitFile unit = UnitFile::Read(kBuild + "/serverd/dist/sigil-server.service");

  ASSERT_FALSE(unit.Get("StateDirectory").empty());
  EXPECT_EQ(config->data_dir, "/var/lib/" + unit.Get("StateDirectory"));
  ASSERT_FALSE(unit.Get("RuntimeDirectory").empty());
  EXPECT_TRUE(IsUnder(config->socket_path, "/run/" + unit.Get("RuntimeDirectory"))) << config->socket_path;
  // Everything serverd writes is in data_dir, the one folder ProtectSystem=strict leaves it.
  EXPECT_EQ(config->key_store.kind, hw::KeyStoreKind::kSoft);
  EXPECT_TRUE(IsUnder(config->key_store.key_dir, config->data_dir)) << config->key_store.key_dir;
  EXPECT_TRUE(IsUnder(config->sqlite_path, config->data_dir)) << config->sqlite_path;
  EXPECT_EQ(config->trust_domain.name(), "example.org");

  EXPECT_EQ(Words(unit.Get("ExecStart")),
            (std::vector<std::string>{SIGIL_BINDIR "/serverd", "run", "-config", SIGIL_SYSCONFDIR "/sigil/server.yaml"}));
  const SysUser user = UserOf(ReadFile(kSource + "/serverd/dist/sysusers.conf"));
  EXPECT_EQ(unit.Get("User"), user.name);
  EXPECT_EQ(unit.Get("User"), "sigil-server");
  EXPECT_EQ(user.home, config->data_dir);
  // serverd needs no capability: both sets are given, and empty.
  EXPECT_EQ(unit.All("CapabilityBoundingSet"), std::vector<std::string>{""});
  EXPECT_EQ(unit.All("AmbientCapabilities"), std::vector<std::string>{""});
}

TEST(ShippedConfigTest, AgentYamlParsesAndNamesTheUnitsFolders) {
  const std::string text = ReadFile(kSource + "/agentd/dist/agent.yaml");
  const auto config = agentd::ParseAgentConfig(text, "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const UnitFile unit = UnitFile::Read(kBuild + "/agentd/dist/sigil-agent.service");

  ASSERT_FALSE(unit.Get("StateDirectory").empty());
  EXPECT_EQ(config->data_dir, "/var/lib/" + unit.Get("StateDirectory"));
  ASSERT_FALSE(unit.Get("RuntimeDirectory").empty());
  EXPECT_TRUE(IsUnder(config->socket_path, "/run/" + unit.Get("RuntimeDirectory"))) << config->socket_path;
  // Every local user reaches the Workload API socket.
  EXPECT_EQ(unit.Get("RuntimeDirectoryMode"), "0755");
  // tools/provision-devid writes the DevID where agentd looks, inside data_dir.
  EXPECT_TRUE(IsUnder(hw::kDefaultDevIdDir, config->data_dir));
  EXPECT_FALSE(config->tpm_devid.has_value());

  EXPECT_EQ(Words(unit.Get("ExecStart")),
            (std::vector<std::string>{SIGIL_BINDIR "/agentd", "run", "-config", SIGIL_SYSCONFDIR "/sigil/agent.yaml"}));
  const SysUser user = UserOf(ReadFile(kSource + "/agentd/dist/sysusers.conf"));
  EXPECT_EQ(unit.Get("User"), user.name);
  EXPECT_EQ(unit.Get("User"), "sigil-agent");
  EXPECT_EQ(user.home, config->data_dir);
  // The two the unix workload attestor needs (unit_capabilities_test), and the bounding set no
  // larger.
  EXPECT_EQ(Words(unit.Get("AmbientCapabilities")),
            (std::vector<std::string>{"CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}));
  EXPECT_EQ(unit.Get("CapabilityBoundingSet"), unit.Get("AmbientCapabilities"));
}

// The commented tpm_devid section of agent.yaml, uncommented, is a working alternative.
TEST(ShippedConfigTest, AgentYamlsTpmDevIdExampleParses) {
  std::string text = ReadFile(kSource + "/agentd/dist/agent.yaml");
  const size_t at = text.find("\n# tpm_devid:");
  ASSERT_NE(at, std::string::npos);
  std::string uncommented = text.substr(0, at + 1);
  std::istringstream rest(text.substr(at + 1));
  for (std::string line; std::getline(rest, line);) {
    uncommented += (line.rfind("# ", 0) == 0 ? line.substr(2) : line) + "\n";
  }
  const auto config = agentd::ParseAgentConfig(uncommented, "agent.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString() << "\n" << uncommented;
  ASSERT_TRUE(config->tpm_devid.has_value());
  EXPECT_EQ(config->tpm_devid->tcti, "device:/dev/tpmrm0");
  EXPECT_TRUE(IsUnder(config->tpm_devid->devid_certificate_path, config->data_dir));
}

}  // namespace
}  // namespace sigil
