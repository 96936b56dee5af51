// SPIRE's config files for the real daemons: serverd started from a server.conf and agentd from
// an agent.conf, in HCL as SPIRE writes them, attest the agent with a join token and serve a
// workload its X509-SVID, as with YAML files. `serverd validate` and `agentd validate` check a
// file of either language, say what is wrong with one that is not valid, and start nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/agentd_process.h"
#include "tests/support/serverd_process.h"
#include "tests/support/softhsm_suite.h"

namespace sigil::agentd::testing {
namespace {

namespace fs = std::filesystem;
using sigil::testing::AgentdOptions;
using sigil::testing::AgentdProcess;
using sigil::testing::ProcessOutput;
using sigil::testing::ServerdOptions;
using sigil::testing::ServerdProcess;
using sigil::testing::TempDir;
using sigil::testing::WaitUntil;
using sigil::testing::WriteFile;

class SpireConfProcessTest : public sigil::testing::SoftHsmSuite<> {
 protected:
  ProcessOutput Run(std::vector<std::string> argv) {
    auto out = sigil::testing::RunProcess(argv, {}, std::chrono::seconds(30));
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : ProcessOutput{};
  }
  TempDir work_{"sigil-spire-conf"};
};

TEST_F(SpireConfProcessTest, DaemonsStartedFromSpiresFilesAttestAndServeAWorkload) {
  ServerdOptions server_options;
  server_options.spire_hcl = true;
  auto server = ServerdProcess::Create(*hsm_, "spire-conf", server_options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_EQ((*server)->config_path().filename(), "server.conf");
  Status started = (*server)->Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << "\n" << (*server)->logs();

  const std::string token = (*server)->NewJoinToken();
  ASSERT_FALSE(token.empty());
  const ProcessOutput bundle = (*server)->MustCli({"bundle", "show"});
  ASSERT_EQ(bundle.exit_code, 0) << bundle.err;
  WriteFile(work_.path() / "bundle.pem", bundle.out);

  AgentdOptions agent_options;
  agent_options.spire_hcl = true;
  agent_options.server_port = (*server)->agent_port();
  agent_options.join_token = token;
  agent_options.trust_bundle_path = work_.path() / "bundle.pem";
  auto agent = AgentdProcess::Create(agent_options);
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  ASSERT_EQ((*agent)->config_path().filename(), "agent.conf");
  started = (*agent)->Start();
  ASSERT_TRUE(started.ok()) << started.ToString() << "\n" << (*agent)->logs() << (*server)->logs();

  const ProcessOutput entry = (*server)->MustCli(
      {"entry", "create", "-parentID", "spiffe://example.org/spire/agent/join_token/" + token, "-spiffeID",
       "spiffe://example.org/spire-conf/workload", "-selector", "unix:uid:" + std::to_string(::getuid())});
  ASSERT_EQ(entry.exit_code, 0) << entry.err;

  const fs::path svid_dir = work_.path() / "svid";
  fs::create_directories(svid_dir);
  ProcessOutput fetched;
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto out = (*agent)->Cli({"api", "fetch", "x509", "-write", svid_dir.string()});
        if (out.ok()) fetched = *out;
        return out.ok() && out->exit_code == 0;
      },
      std::chrono::seconds(15)))
      << fetched.err << "\n" << (*agent)->logs();
  EXPECT_NE(fetched.out.find("SPIFFE ID:\t\tspiffe://example.org/spire-conf/workload"), std::string::npos)
      << fetched.out;
  EXPECT_TRUE(fs::exists(svid_dir / "svid.0.pem"));
  // SPIRE's uppercase DEBUG reached agentd's logger.
  EXPECT_NE((*agent)->logs().find("level=debug"), std::string::npos) << (*agent)->logs();

  EXPECT_EQ((*agent)->Stop(), 0);
  EXPECT_EQ((*server)->Stop(), 0);
}

TEST_F(SpireConfProcessTest, ServerdValidateChecksEitherLanguageAndStartsNothing) {
  // Where serverd would keep its state and bind its admin socket; validate makes none of it.
  const fs::path state = work_.path() / "state";
  const std::string paths = "    data_dir = \"" + (state / "data").string() + "\"\n    socket_path = \"" +
                            (state / "admin" / "api.sock").string() + "\"\n";
  const fs::path good = work_.path() / "server.conf";
  WriteFile(good, "server {\n    trust_domain = \"example.org\"\n    log_level = \"DEBUG\"\n" + paths +
                      "}\nplugins {\n    KeyManager \"disk\" { plugin_data { keys_path = \"" +
                      (state / "keys.json").string() + "\" } }\n    NodeAttestor \"join_token\" {}\n}\n");
  ProcessOutput out = Run({ServerdProcess::Binary(), "validate", "-config", good.string()});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "serverd configuration file is valid.\n");
  EXPECT_EQ(out.err, "");
  EXPECT_FALSE(fs::exists(state)) << "validate made serverd's folders";

  // The run command's flags: a file without its trust domain is valid with -trustDomain.
  const fs::path yaml = work_.path() / "server.yaml";
  WriteFile(yaml, "server:\n  data_dir: " + (state / "data").string() + "\n  socket_path: " +
                      (state / "admin" / "api.sock").string() + "\n");
  out = Run({ServerdProcess::Binary(), "validate", "-config", yaml.string()});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("server.trust_domain: is required (or -trustDomain)"), std::string::npos) << out.err;
  out = Run({ServerdProcess::Binary(), "validate", "-config", yaml.string(), "-trustDomain", "example.org"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "serverd configuration file is valid.\n");

  const fs::path bad = work_.path() / "bad.conf";
  WriteFile(bad, "server {\n    trust_domain = \"example.org\"\n    ca_ttl = \"1 day\"\n" + paths +
                     "}\nplugins {\n    KeyManager \"memory\" {}\n}\n");
  out = Run({ServerdProcess::Binary(), "validate", "-config", bad.string()});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(out.out, "");
  EXPECT_EQ(out.err.rfind("serverd configuration file is invalid: " + bad.string() + ": ", 0), 0u) << out.err;
  EXPECT_NE(out.err.find("server.ca_ttl: '1 day' is not a duration"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("plugins.KeyManager \"memory\": would lose the CA key"), std::string::npos) << out.err;

  const fs::path neither = work_.path() / "server.cfg";
  WriteFile(neither, "server: [1,\n");
  out = Run({ServerdProcess::Binary(), "validate", "-config", neither.string()});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("neither YAML nor HCL"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("serverd reads YAML (.yaml, .yml) and SPIRE's HCL (.conf, .hcl)"), std::string::npos)
      << out.err;
  EXPECT_FALSE(fs::exists(state));
}

TEST_F(SpireConfProcessTest, AgentdValidateChecksEitherLanguageAndStartsNothing) {
  const fs::path state = work_.path() / "agent-state";
  const fs::path good = work_.path() / "agent.conf";
  WriteFile(good, "agent {\n    trust_domain = \"example.org\"\n    trust_bundle_path = \"/etc/sigil/bundle.pem\"\n"
                  "    data_dir = \"" + state.string() + "\"\n    socket_path = \"" +
                      (state / "api.sock").string() + "\"\n}\nplugins {\n    NodeAttestor \"join_token\" {}\n"
                      "    KeyManager \"disk\" {}\n    WorkloadAttestor \"unix\" {}\n}\n");
  ProcessOutput out = Run({AgentdProcess::Binary(), "validate", "-config", good.string()});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "agentd configuration file is valid.\n");
  EXPECT_FALSE(fs::exists(state)) << "validate made agentd's folders";

  const fs::path yaml = work_.path() / "agent.yaml";
  WriteFile(yaml, "agent:\n  trust_domain: example.org\n  insecure_bootstrap: true\n  data_dir: " + state.string() +
                      "\n");
  out = Run({AgentdProcess::Binary(), "validate", "-config", yaml.string()});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "agentd configuration file is valid.\n");

  const fs::path bad = work_.path() / "bad-agent.conf";
  WriteFile(bad, "agent {\n    trust_domain = \"example.org\"\n    insecure_bootstrap = true\n}\n"
                 "plugins {\n    KeyManager \"memory\" {}\n    WorkloadAttestor \"docker\" {}\n}\n");
  out = Run({AgentdProcess::Binary(), "validate", "-config", bad.string()});
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(out.out, "");
  EXPECT_EQ(out.err.rfind("agentd configuration file is invalid: " + bad.string() + ": ", 0), 0u) << out.err;
  EXPECT_NE(out.err.find("plugins.KeyManager \"memory\": would lose the agent's key"), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("plugins.WorkloadAttestor \"docker\": is not available in Sigil"), std::string::npos)
      << out.err;
  EXPECT_FALSE(fs::exists(state));
}

}  // namespace
}  // namespace sigil::agentd::testing
