#include "core/hcl.h"

#include <gtest/gtest.h>

#include <string>

#include "core/config.h"

namespace sigil {
namespace {

// server.conf as SPIRE's documentation and its conf/server examples write it.
constexpr std::string_view kServerConf = R"(server {
    bind_address = "0.0.0.0"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "./.data"
    log_level = "DEBUG"
    ca_key_type = "rsa-2048"
    ca_ttl = "168h"
    default_x509_svid_ttl = "1h"

    ca_subject = {
        country = ["US"],
        organization = ["SPIFFE"],
        common_name = "",
    }

    federation {
        bundle_endpoint {
            address = "0.0.0.0"
            port = 8443
        }
        federates_with "domain1.test" {
            bundle_endpoint_url = "https://1.2.3.4:8443"
            bundle_endpoint_profile "https_web" {}
        }
        federates_with "domain2.test" {
            bundle_endpoint_url = "https://5.6.7.8:8443"
            bundle_endpoint_profile "https_spiffe" {
                endpoint_spiffe_id = "spiffe://domain2.test/beserver"
            }
        }
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }

    NodeAttestor "join_token" {
        plugin_data {
        }
    }

    # TPM DevID: the DevID CA and the TPM makers' endorsement CAs.
    NodeAttestor "tpm_devid" {
        plugin_data {
            devid_ca_path = "/opt/spire/conf/server/devid-cacert.pem"
            endorsement_ca_path = "/opt/spire/conf/server/endorsement-cacert.pem"
        }
    }

    KeyManager "disk" {
        plugin_data {
            keys_path = "./.data/keys.json"
        }
    }

    // UpstreamAuthority "disk" {
    //     plugin_data {
    //         key_file_path = "./conf/server/dummy_upstream_ca.key"
    //     }
    // }
}

health_checks {
    listener_enabled = true
    bind_address = "0.0.0.0"
    bind_port = "8080"
    live_path = "/live"
    ready_path = "/ready"
}

telemetry {
    Prometheus {
        host = "127.0.0.1"
        port = 9988
    }
}
)";

constexpr std::string_view kAgentConf = R"(agent {
    data_dir = "./.data"
    log_level = "DEBUG"
    trust_domain = "example.org"
    server_address = "localhost"
    server_port = 8081
    socket_path = "/tmp/spire-agent/public/api.sock"
    trust_bundle_path = "./conf/agent/dummy_root_ca.crt"
    join_token = "4ae1b6b5-ad1a-4d38-9e4e-6e1b7e6a1d01"
    insecure_bootstrap = false
}

plugins {
    KeyManager "disk" {
        plugin_data {
            directory = "./.data"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
)";

YAML::Node Parse(std::string_view text) {
  auto parsed = ParseHcl(text, "test.conf");
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : YAML::Node();
}

// The message of a refusal, which must be InvalidArgument.
std::string Refusal(std::string_view text, std::string_view file = "server.conf") {
  auto parsed = ParseHcl(text, file);
  if (parsed.ok()) {
    ADD_FAILURE() << "accepted: " << text;
    return "";
  }
  EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
  return parsed.status().message();
}

std::vector<std::string> Keys(const YAML::Node& map) {
  std::vector<std::string> keys;
  for (const auto& item : map) keys.push_back(item.first.Scalar());
  return keys;
}

TEST(HclTest, ReadsSpireServerConf) {
  const YAML::Node root = Parse(kServerConf);
  EXPECT_EQ(Keys(root),
            (std::vector<std::string>{"server", "plugins", "health_checks", "telemetry"}));
  const YAML::Node server = root["server"];
  EXPECT_EQ(server["bind_address"].Scalar(), "0.0.0.0");
  EXPECT_EQ(server["bind_port"].Scalar(), "8081");
  EXPECT_EQ(server["trust_domain"].Scalar(), "example.org");
  EXPECT_EQ(server["ca_ttl"].Scalar(), "168h");
  EXPECT_EQ(server["default_x509_svid_ttl"].Scalar(), "1h");
  const YAML::Node subject = server["ca_subject"];
  ASSERT_TRUE(subject.IsMap());
  ASSERT_TRUE(subject["country"].IsSequence());
  EXPECT_EQ(subject["country"][0].Scalar(), "US");
  EXPECT_EQ(subject["organization"][0].Scalar(), "SPIFFE");
  EXPECT_EQ(subject["common_name"].Scalar(), "");

  const YAML::Node federation = server["federation"];
  EXPECT_EQ(federation["bundle_endpoint"]["port"].Scalar(), "8443");
  const YAML::Node with = federation["federates_with"];
  EXPECT_EQ(Keys(with), (std::vector<std::string>{"domain1.test", "domain2.test"}));
  EXPECT_TRUE(with["domain1.test"]["bundle_endpoint_profile"]["https_web"].IsMap());
  EXPECT_EQ(with["domain2.test"]["bundle_endpoint_profile"]["https_spiffe"]["endpoint_spiffe_id"]
                .Scalar(),
            "spiffe://domain2.test/beserver");

  const YAML::Node plugins = root["plugins"];
  EXPECT_EQ(Keys(plugins), (std::vector<std::string>{"DataStore", "NodeAttestor", "KeyManager"}));
  EXPECT_EQ(Keys(plugins["NodeAttestor"]), (std::vector<std::string>{"join_token", "tpm_devid"}));
  EXPECT_TRUE(plugins["NodeAttestor"]["join_token"]["plugin_data"].IsMap());
  EXPECT_EQ(plugins["NodeAttestor"]["join_token"]["plugin_data"].size(), 0u);
  EXPECT_EQ(plugins["NodeAttestor"]["tpm_devid"]["plugin_data"]["devid_ca_path"].Scalar(),
            "/opt/spire/conf/server/devid-cacert.pem");
  EXPECT_EQ(plugins["DataStore"]["sql"]["plugin_data"]["database_type"].Scalar(), "sqlite3");
  EXPECT_EQ(plugins["KeyManager"]["disk"]["plugin_data"]["keys_path"].Scalar(),
            "./.data/keys.json");
  EXPECT_FALSE(plugins["UpstreamAuthority"].IsDefined());

  EXPECT_EQ(root["health_checks"]["listener_enabled"].Scalar(), "true");
  EXPECT_EQ(root["health_checks"]["ready_path"].Scalar(), "/ready");
  EXPECT_EQ(root["telemetry"]["Prometheus"]["port"].Scalar(), "9988");
}

TEST(HclTest, ReadsSpireAgentConf) {
  const YAML::Node root = Parse(kAgentConf);
  const YAML::Node agent = root["agent"];
  EXPECT_EQ(agent["trust_bundle_path"].Scalar(), "./conf/agent/dummy_root_ca.crt");
  EXPECT_EQ(agent["join_token"].Scalar(), "4ae1b6b5-ad1a-4d38-9e4e-6e1b7e6a1d01");
  EXPECT_EQ(agent["server_address"].Scalar(), "localhost");
  EXPECT_EQ(agent["server_port"].Scalar(), "8081");
  EXPECT_EQ(agent["socket_path"].Scalar(), "/tmp/spire-agent/public/api.sock");
  EXPECT_EQ(agent["insecure_bootstrap"].Scalar(), "false");
  const YAML::Node plugins = root["plugins"];
  EXPECT_EQ(Keys(plugins),
            (std::vector<std::string>{"KeyManager", "NodeAttestor", "WorkloadAttestor"}));
  EXPECT_TRUE(plugins["WorkloadAttestor"]["unix"]["plugin_data"].IsMap());
  EXPECT_EQ(plugins["KeyManager"]["disk"]["plugin_data"]["directory"].Scalar(), "./.data");
}

// A PKCS#11 key manager whose PIN is left for -expandEnv: every ${...} reaches the caller as
// written, quotes and braces inside it included.
TEST(HclTest, KeepsInterpolationAsLiteralText) {
  const YAML::Node root = Parse(R"(plugins {
  KeyManager "pkcs11" {
    plugin_cmd = "/opt/spire/plugins/pkcs11"
    plugin_data {
      module_path = "/usr/lib/softhsm/libsofthsm2.so"
      token_label = "sigil"
      user_pin = "${PKCS11_PIN}"
      key_label = "${LABEL:-"ca key"}"
      nested = "${a {b} "c" d}"
      dollars = "$$ and $x and $"
    }
  }
})");
  const YAML::Node data = root["plugins"]["KeyManager"]["pkcs11"]["plugin_data"];
  EXPECT_EQ(data["user_pin"].Scalar(), "${PKCS11_PIN}");
  EXPECT_EQ(data["key_label"].Scalar(), R"(${LABEL:-"ca key"})");
  EXPECT_EQ(data["nested"].Scalar(), R"(${a {b} "c" d})");
  EXPECT_EQ(data["dollars"].Scalar(), "$$ and $x and $");
}

// What SPIRE's server and agent configs become is read by ConfigSection as the YAML config
// of the same values is: quoted and unquoted ports, booleans, durations, lists.
TEST(HclTest, ConfigSectionReadsItAsItReadsYaml) {
  const YAML::Node root = Parse(kServerConf);
  auto doc = ConfigDocument::Parse(YAML::Dump(root), "server.conf");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  ConfigSection server = doc->root().Section("server");
  int bind_port = 0;
  std::chrono::seconds ca_ttl{0}, svid_ttl{0};
  std::vector<std::string> country;
  server.Read("bind_port", bind_port, 1, 65535);
  server.Read("ca_ttl", ca_ttl);
  server.Read("default_x509_svid_ttl", svid_ttl);
  server.Section("ca_subject").Read("country", country);
  HealthCheckConfig health;
  ReadHealthChecks(doc->root().Section("health_checks"), health);
  int prometheus_port = 0;
  doc->root().Section("telemetry").Section("Prometheus").Read("port", prometheus_port, 1, 65535);
  ASSERT_TRUE(doc->Finish().ok()) << doc->Finish().ToString();
  EXPECT_EQ(bind_port, 8081);
  EXPECT_EQ(ca_ttl, std::chrono::hours(168));
  EXPECT_EQ(svid_ttl, std::chrono::hours(1));
  EXPECT_EQ(country, std::vector<std::string>{"US"});
  EXPECT_TRUE(health.listener_enabled);
  EXPECT_EQ(health.bind_port, 8080);
  EXPECT_EQ(prometheus_port, 9988);
}

TEST(HclTest, TagsQuotedAndPlainScalarsAsYamlDoes) {
  const YAML::Node root = Parse("a = \"3600\"\nb = 3600\nc = true\nd = null\ne = <<EOF\nx\nEOF\n");
  EXPECT_EQ(root["a"].Tag(), "!");
  EXPECT_EQ(root["b"].Tag(), "?");
  EXPECT_EQ(root["c"].Tag(), "?");
  EXPECT_TRUE(root["d"].IsNull());
  EXPECT_EQ(root["e"].Tag(), "!");
  const YAML::Node yaml = YAML::Load("a: \"3600\"\nb: 3600\n");
  EXPECT_EQ(yaml["a"].Tag(), root["a"].Tag());
  EXPECT_EQ(yaml["b"].Tag(), root["b"].Tag());
}

TEST(HclTest, UnescapesStrings) {
  const YAML::Node root = Parse(R"(s = "a\nb\tc\"d\\e\r"
u = "caf\u00e9 \U0001F600 \u0041")"
                                "\nraw = \"tab\tand \xC3\xA9\"");
  EXPECT_EQ(root["s"].Scalar(), "a\nb\tc\"d\\e\r");
  EXPECT_EQ(root["u"].Scalar(), "caf\xC3\xA9 \xF0\x9F\x98\x80 A");
  EXPECT_EQ(root["raw"].Scalar(), "tab\tand \xC3\xA9");
}

TEST(HclTest, ReadsHeredocs) {
  const YAML::Node root = Parse(
      "plain = <<EOF\n  -----BEGIN CERTIFICATE-----\n  MIIB\nEOF\n"
      "indented = <<-EOT\n    line one\n      line two\n    EOT\n"
      "uneven = <<-EOT\n    deep\n  shallow\n    EOT\n"
      "empty = <<EOF\nEOF\n"
      "crlf = <<EOF\r\nwindows\r\nEOF\r\n"
      "after = 1\n");
  EXPECT_EQ(root["plain"].Scalar(), "  -----BEGIN CERTIFICATE-----\n  MIIB\n");
  EXPECT_EQ(root["indented"].Scalar(), "line one\n  line two\n");
  // As HCL 1: a line less indented than the marker leaves every line as it is.
  EXPECT_EQ(root["uneven"].Scalar(), "    deep\n  shallow\n");
  EXPECT_EQ(root["empty"].Scalar(), "");
  EXPECT_EQ(root["crlf"].Scalar(), "windows\r\n");
  EXPECT_EQ(root["after"].Scalar(), "1");
}

TEST(HclTest, KeepsTheLiteralTextOfNumbers) {
  const YAML::Node root =
      Parse("a = 3600\nb = -1\nc = 1.5\nd = 2e10\ne = -0.25E-3\nf = 0\ng = 0.5\n");
  EXPECT_EQ(root["a"].Scalar(), "3600");
  EXPECT_EQ(root["b"].Scalar(), "-1");
  EXPECT_EQ(root["c"].Scalar(), "1.5");
  EXPECT_EQ(root["d"].Scalar(), "2e10");
  EXPECT_EQ(root["e"].Scalar(), "-0.25E-3");
  EXPECT_EQ(root["f"].Scalar(), "0");
  EXPECT_EQ(root["g"].Scalar(), "0.5");
}

TEST(HclTest, ReadsListsAndObjects) {
  const YAML::Node root = Parse(R"(
empty = []
one = [1]
trailing = ["a", "b",]
multi = [
  "x", # a comment between items
  [true, false],
  { name = "n", "quoted key" : 2 },
]
object = { a = 1, b = "x" }
json = { "a" : 1, "b" : [] }
lines = {
  a = 1
  b = 2
}
nested = { inner { c = 3 } }
)");
  EXPECT_TRUE(root["empty"].IsSequence());
  EXPECT_EQ(root["empty"].size(), 0u);
  EXPECT_EQ(root["one"][0].Scalar(), "1");
  EXPECT_EQ(root["trailing"].size(), 2u);
  EXPECT_EQ(root["trailing"][1].Scalar(), "b");
  ASSERT_EQ(root["multi"].size(), 3u);
  EXPECT_EQ(root["multi"][1][1].Scalar(), "false");
  EXPECT_EQ(root["multi"][2]["name"].Scalar(), "n");
  EXPECT_EQ(root["multi"][2]["quoted key"].Scalar(), "2");
  EXPECT_EQ(root["object"]["b"].Scalar(), "x");
  EXPECT_EQ(root["json"]["a"].Scalar(), "1");
  EXPECT_TRUE(root["json"]["b"].IsSequence());
  EXPECT_EQ(root["lines"]["b"].Scalar(), "2");
  EXPECT_EQ(root["nested"]["inner"]["c"].Scalar(), "3");
}

TEST(HclTest, SkipsCommentsAndTakesSpireIdentifiers) {
  const YAML::Node root = Parse(R"(# hash
// slashes
/* a block
   comment */ server /* inside */ {
  ca-key.type = "ec-p256" // after a value
  "quoted-key" = 1, other = 2
  one.line { a = 1 b = 2 }
}
)");
  EXPECT_EQ(root["server"]["ca-key.type"].Scalar(), "ec-p256");
  EXPECT_EQ(root["server"]["quoted-key"].Scalar(), "1");
  EXPECT_EQ(root["server"]["other"].Scalar(), "2");
  EXPECT_EQ(root["server"]["one.line"]["b"].Scalar(), "2");
}

TEST(HclTest, ReadsEmptyDocuments) {
  for (const char* text : {"", "\n\n", "# only a comment\n", "\xEF\xBB\xBF"}) {
    const YAML::Node root = Parse(text);
    EXPECT_TRUE(root.IsMap()) << text;
    EXPECT_EQ(root.size(), 0u) << text;
  }
}

TEST(HclTest, KeepsLabelledBlocksApartAndMultipleLabelsNested) {
  const YAML::Node root = Parse(R"(a "x" "y" { v = 1 }
a "x" "z" { v = 2 }
a "w" { v = 3 }
)");
  EXPECT_EQ(root["a"]["x"]["y"]["v"].Scalar(), "1");
  EXPECT_EQ(root["a"]["x"]["z"]["v"].Scalar(), "2");
  EXPECT_EQ(root["a"]["w"]["v"].Scalar(), "3");
}

TEST(HclTest, NestsUpToTheDepthLimit) {
  std::string deep;
  for (int i = 0; i < kHclMaxDepth; ++i) deep += "a {";
  deep += std::string(kHclMaxDepth, '}');
  EXPECT_TRUE(ParseHcl(deep, "deep.conf").ok());
  const std::string list = "a = " + std::string(kHclMaxDepth, '[') + std::string(kHclMaxDepth, ']');
  EXPECT_TRUE(ParseHcl(list, "deep.conf").ok());
}

struct RefusalCase {
  std::string_view text;
  std::string_view message;
};

TEST(HclTest, RefusalsNameTheLineAndTheProblem) {
  const RefusalCase cases[] = {
      {"server {\n    bind_port 8081\n}\n",
       "server.conf:2:15: expected '=' or '{' after \"bind_port\""},
      {"server {\n  log_level DEBUG\n}\n",
       "server.conf:2:13: expected '=' or '{' after \"log_level\""},
      {"a = 1\nb = 2\na = 3\n", "server.conf:3:1: \"a\" is set twice: first at line 1"},
      {"plugins {\n  NodeAttestor \"join_token\" {}\n  NodeAttestor \"join_token\" {}\n}",
       "server.conf:3:3: block NodeAttestor \"join_token\" is defined twice: first at line 2"},
      {"server {}\nserver {}\n", "server.conf:2:1: block server is defined twice: first at line 1"},
      {"a = 1\na {}\n", "server.conf:2:1: \"a\" is defined twice: first at line 1"},
      {"a \"x\" {}\na = 1\n", "server.conf:2:1: \"a\" is set twice: first at line 1"},
      {"a \"x\" = 1\n", "server.conf:1:7: expected '{' after the labels of block \"a\""},
      {"a = \"open\nb = 1\n",
       "server.conf:1:10: expected '\"' to end the string begun at column 5"},
      {"a = \"open", "server.conf:1:5: string is never closed"},
      {"a = \"\\q\"", "server.conf:1:6: unknown escape '\\q'"},
      {"a = \"\\u12\"", "server.conf:1:6: expected 4 hexadecimal digits after '\\u'"},
      {"a = \"\\uD800\"", "server.conf:1:6: escape '\\u' names no character"},
      {"a = \"\\u0000\"", "server.conf:1:6: escape '\\u' names no character"},
      {"a = 1\n/* never\nclosed", "server.conf:2:1: comment '/*' is never closed"},
      {"a = <<EOF\nline\n",
       "server.conf:1:5: heredoc is never closed: expected a line holding only EOF"},
      {"a = << EOF\nx\nEOF\n", "server.conf:1:7: expected a marker such as EOF after '<<'"},
      {"a = <<EOF x\nEOF\n",
       "server.conf:1:10: expected the end of the line after the heredoc marker EOF"},
      {"server {\n  a = 1\n", "server.conf:3:1: expected '}' to close the '{' of line 1"},
      {"a = 1\n}\n", "server.conf:2:1: found '}' with no block open"},
      {"a = [1 2]", "server.conf:1:8: expected ',' or ']' after a list item, found '2'"},
      {"a = [1,\n", "server.conf:2:1: expected ']' to close the '[' of line 1"},
      {"a = [,]", "server.conf:1:6: expected a value"},
      {"log_level = DEBUG",
       "server.conf:1:13: expected a value, found the word \"DEBUG\": text is written in quotes"},
      {"ttl = 1h",
       "server.conf:1:8: expected the end of the number 1, found the word \"h\": a value such as "
       "1h"},
      {"mode = 0644", "server.conf:1:8: a number may not start with 0"},
      {"n = 0x10", "server.conf:1:5: a number may not start with 0"},
      {"n = 1.2.3", "server.conf:1:8: expected the end of the number 1.2, found '.'"},
      {"n = -x", "server.conf:1:6: expected a digit after '-'"},
      {"a =",
       "server.conf:1:4: expected a value (a string, number, true, false, null, list or object), "
       "found the end of the file"},
      {"= 1", "server.conf:1:1: expected a key, found '='"},
      {"a : 1", "server.conf:1:3: expected '=' or '{' after \"a\""},
      {"a = { b = 1, b = 2 }", "server.conf:1:14: \"b\" is set twice: first at line 1"},
      {"a = 1,,", "server.conf:1:7: expected a key, found ','"},
      {"a = \"\xFF\"", "server.conf:1:6: not UTF-8 text"},
      {"caf\xC3\xA9 = 1", "server.conf:1:4: expected '=' or '{' after \"caf\""},
      {"\xC3\xA9t\xC3\xA9 = 1", "server.conf:1:1: expected a key, found '\xC3\xA9'"},
      {"a = 1\n\x01", "server.conf:2:1: expected a key, found the byte 0x01"},
      {"a = 1\nb = \"\xC0\xAF\"", "server.conf:2:6: not UTF-8 text"},
      {std::string_view("a = \"x\0y\"", 9), "server.conf:1:7: a NUL byte"},
  };
  for (const auto& c : cases) {
    const std::string message = Refusal(c.text);
    EXPECT_EQ(message.substr(0, c.message.size()), c.message) << "for input: " << c.text;
  }
}

TEST(HclTest, RefusesNestingBeyondTheLimit) {
  std::string deep;
  for (int i = 0; i <= kHclMaxDepth; ++i) deep += "a {\n";
  EXPECT_EQ(Refusal(deep, "deep.conf"), "deep.conf:65:1: nested deeper than 64 levels");
  EXPECT_NE(Refusal("a = " + std::string(100000, '[')).find("nested deeper than 64 levels"),
            std::string::npos);
  std::string objects = "a = ";
  for (int i = 0; i < 100000; ++i) objects += "{ b = ";
  EXPECT_NE(Refusal(objects).find("nested deeper than 64 levels"), std::string::npos);
  // Each label is a level of the tree, so labels count too.
  std::string labels = "a";
  for (int i = 0; i < 100; ++i) labels += " \"l\"";
  EXPECT_NE(Refusal(labels + " {}").find("server.conf:1:"), std::string::npos);
  EXPECT_NE(Refusal(labels + " {}").find("nested deeper than 64 levels"), std::string::npos);
}

TEST(HclTest, RefusesTooLargeInput) {
  const std::string big(kHclMaxBytes + 1, '#');
  EXPECT_EQ(Refusal(big), "server.conf: larger than 1 MiB, too large for a config file");
  // At the limit it is read: a megabyte of attributes.
  std::string many;
  for (int i = 0; many.size() < kHclMaxBytes - 32; ++i)
    many += "k" + std::to_string(i) + " = " + std::to_string(i) + "\n";
  auto parsed = ParseHcl(many, "many.conf");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)["k12345"].Scalar(), "12345");
}

}  // namespace
}  // namespace sigil
