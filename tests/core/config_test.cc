#include "core/config.h"

#include <gtest/gtest.h>

#include <map>

namespace sigil {
namespace {

using std::chrono::seconds;

TEST(DurationTest, ParsesUnitsAndBareSeconds) {
  EXPECT_EQ(*ParseDuration("90"), seconds(90));
  EXPECT_EQ(*ParseDuration("90s"), seconds(90));
  EXPECT_EQ(*ParseDuration("5m"), seconds(300));
  EXPECT_EQ(*ParseDuration("1h30m"), seconds(5400));
  EXPECT_EQ(*ParseDuration("7d"), seconds(7 * 86400));
  for (const char* bad : {"", "h", "1x", "1h30", "-5m", "1.5h", "1 h", "9999999999999s"}) {
    auto parsed = ParseDuration(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_NE(parsed.status().message().find("is not a duration"), std::string::npos) << bad;
  }
}

TEST(DurationTest, FormatsInLargestExactUnits) {
  EXPECT_EQ(FormatDuration(seconds(5400)), "1h30m");
  EXPECT_EQ(FormatDuration(seconds(86400 + 1)), "1d1s");
  EXPECT_EQ(FormatDuration(seconds(0)), "0s");
  EXPECT_EQ(*ParseDuration(FormatDuration(seconds(123456))), seconds(123456));
}

struct Sample {
  std::string trust_domain = "example.org";
  int port = 8081;
  bool enabled = false;
  seconds ttl{3600};
  std::vector<std::string> uids;
  std::string format = "text";
  std::string nested = "default";
};

Status Load(std::string_view yaml, Sample& sample) {
  SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::Parse(yaml, "server.yaml"));
  ConfigSection server = doc.root().Section("server");
  server.Read("trust_domain", sample.trust_domain);
  server.Read("port", sample.port, 1, 65535);
  server.Read("enabled", sample.enabled);
  server.Read("ttl", sample.ttl, seconds(60));
  server.Read("uids", sample.uids);
  server.ReadChoice("format", sample.format, {"text", "json"});
  ConfigSection inner = server.Section("inner");
  inner.Read("value", sample.nested);
  inner.RefuseUnknownKeys();
  server.RefuseUnknownKeys();
  doc.root().RefuseUnknownKeys();
  return doc.Finish();
}

TEST(ConfigTest, DefaultsStayWhenKeysAreAbsent) {
  Sample sample;
  ASSERT_TRUE(Load("server: {}\n", sample).ok());
  EXPECT_EQ(sample.port, 8081);
  EXPECT_EQ(sample.ttl, seconds(3600));
  EXPECT_EQ(sample.format, "text");
  ASSERT_TRUE(Load("", sample).ok());
}

TEST(ConfigTest, ReadsEveryType) {
  Sample sample;
  const Status status = Load(R"(
server:
  trust_domain: prod.example
  port: 9000
  enabled: true
  ttl: 2h
  uids: [0, 1001]
  format: json
  inner:
    value: here
)", sample);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(sample.trust_domain, "prod.example");
  EXPECT_EQ(sample.port, 9000);
  EXPECT_TRUE(sample.enabled);
  EXPECT_EQ(sample.ttl, seconds(7200));
  EXPECT_EQ(sample.uids, (std::vector<std::string>{"0", "1001"}));
  EXPECT_EQ(sample.format, "json");
  EXPECT_EQ(sample.nested, "here");
}

TEST(ConfigTest, ListsEveryProblemWithItsKeyAndChangesNothingBad) {
  Sample sample;
  const Status status = Load(R"(
server:
  port: 70000
  enabled: maybe
  ttl: -5m
  format: xml
  colour: red
  inner:
    vaule: typo
extra: 1
)", sample);
  ASSERT_FALSE(status.ok());
  const std::string& m = status.message();
  EXPECT_EQ(m.rfind("server.yaml: ", 0), 0u) << m;
  EXPECT_NE(m.find("server.port: 70000 is outside 1..65535"), std::string::npos) << m;
  EXPECT_NE(m.find("server.enabled: expected true or false"), std::string::npos) << m;
  EXPECT_NE(m.find("server.ttl: '-5m' is negative"), std::string::npos) << m;
  EXPECT_NE(m.find("server.format: 'xml' is not one of text, json"), std::string::npos) << m;
  EXPECT_NE(m.find("server.colour: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("server.inner.vaule: unknown key"), std::string::npos) << m;
  EXPECT_NE(m.find("extra: unknown key"), std::string::npos) << m;
  EXPECT_EQ(sample.port, 8081);
  EXPECT_EQ(sample.format, "text");
}

TEST(ConfigTest, ShortTtlAndMalformedYamlAreNamed) {
  Sample sample;
  Status short_ttl = Load("server:\n  ttl: 10s\n", sample);
  EXPECT_NE(short_ttl.message().find("server.ttl: 10s is shorter than 1m"), std::string::npos)
      << short_ttl.message();
  Status malformed = Load("server:\n  port: [1,\n", sample);
  ASSERT_FALSE(malformed.ok());
  EXPECT_NE(malformed.message().find("not valid YAML at line"), std::string::npos) << malformed.message();
  Status not_map = Load("- a\n- b\n", sample);
  EXPECT_NE(not_map.message().find("expected a mapping"), std::string::npos);
  Status section_scalar = Load("server: 5\n", sample);
  EXPECT_NE(section_scalar.message().find("server: expected a mapping of keys"), std::string::npos)
      << section_scalar.message();
}

// Stands for a daemon's translation of SPIRE's tree: a document whose one problem says it was
// made here, and which holds the tree's `a`.
ConfigDocument MarkTranslated(const YAML::Node& hcl, const std::string& source) {
  YAML::Node tree(YAML::NodeType::Map);
  if (hcl["a"].IsDefined()) tree["from_hcl"] = hcl["a"];
  return ConfigDocument::FromTree(tree, source, {}, {"translated"});
}

// "hcl", "yaml", or the error.
std::string ReadAs(std::string_view text, const std::string& source) {
  auto doc = ReadConfigDocument(text, source, "serverd", MarkTranslated);
  if (!doc.ok()) return doc.status().message();
  return doc->Finish().ok() ? "yaml" : "hcl";
}

TEST(ConfigLanguageTest, TheNameSaysWhichLanguageIsTriedFirstAndTheOtherFollows) {
  constexpr std::string_view kHcl = "a = 1\nserver {\n  trust_domain = \"example.org\"\n}\n";
  constexpr std::string_view kYaml = "server:\n  trust_domain: example.org\n";
  EXPECT_EQ(ReadAs(kYaml, "/etc/sigil/server.yaml"), "yaml");
  EXPECT_EQ(ReadAs(kYaml, "agent.yml"), "yaml");
  EXPECT_EQ(ReadAs(kHcl, "server.conf"), "hcl");
  EXPECT_EQ(ReadAs(kHcl, "server.hcl"), "hcl");
  // Under the other language's name: YAML reads SPIRE's file as one long scalar, not a mapping.
  EXPECT_EQ(ReadAs(kHcl, "server.yaml"), "hcl");
  EXPECT_EQ(ReadAs(kYaml, "/etc/sigil/server.conf"), "yaml");
  EXPECT_EQ(ReadAs(kYaml, "/dev/stdin"), "yaml");
  EXPECT_EQ(ReadAs(kHcl, "/dev/stdin"), "hcl");
  EXPECT_EQ(ReadAs("", "server.yaml"), "yaml");
  EXPECT_EQ(ReadAs("", "server.conf"), "hcl");
}

TEST(ConfigLanguageTest, AFileInNeitherLanguageSaysWhichLanguagesAreRead) {
  const std::string read = "serverd reads YAML (.yaml, .yml) and SPIRE's HCL (.conf, .hcl)";
  const std::string as_yaml = ReadAs("server:\n  port: [1,\n", "server.yaml");
  EXPECT_EQ(as_yaml.rfind("server.yaml: not valid YAML at line", 0), 0u) << as_yaml;
  EXPECT_NE(as_yaml.find("(read as YAML; " + read + ")"), std::string::npos) << as_yaml;
  const std::string as_hcl = ReadAs("server {\n  port = 1h\n}\n", "server.conf");
  EXPECT_EQ(as_hcl.rfind("server.conf:2:11: ", 0), 0u) << as_hcl;
  EXPECT_NE(as_hcl.find("(read as SPIRE's HCL; " + read + ")"), std::string::npos) << as_hcl;
  const std::string neither = ReadAs("- a\n- b\n", "config");
  EXPECT_EQ(neither.rfind("config: neither YAML nor HCL (as YAML, config: expected a mapping of keys at the top level; "
                          "as HCL, config:1:1: ",
                          0),
            0u)
      << neither;
  EXPECT_NE(neither.find("); " + read), std::string::npos) << neither;
  // SPIRE's JSON form, which YAML would read: its plugins say what it is.
  const std::string json = ReadAs(R"({"server": {"trust_domain": "example.org"}, "plugins": {}})", "server.json");
  EXPECT_NE(json.find("server.json: SPIRE's JSON form is not read"), std::string::npos) << json;
}

TEST(ConfigLanguageTest, SpiresFileGoesThroughTheTranslation) {
  auto doc = ReadConfigDocument("a = 42\n", "x.conf", "serverd", MarkTranslated);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  int64_t value = 0;
  doc->root().Read("from_hcl", value, 0, 100);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(doc->Finish().message(), "x.conf: translated");
}

TEST(LogLevelTest, TheFlagWinsAndAnyCaseIsRead) {
  auto read = [](std::string_view yaml, std::string_view flag) -> Result<std::string> {
    SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::Parse(yaml, "agent.yaml"));
    std::string level = "info";
    ConfigSection agent = doc.root().Section("agent");
    ReadLogLevel(agent, flag, level);
    SIGIL_RETURN_IF_ERROR(doc.Finish());
    return level;
  };
  EXPECT_EQ(*read("agent: {}\n", ""), "info");
  EXPECT_EQ(*read("agent: {log_level: DEBUG}\n", ""), "debug");
  EXPECT_EQ(*read("agent: {log_level: Warn}\n", ""), "warn");
  EXPECT_EQ(*read("agent: {log_level: debug}\n", "ERROR"), "error");
  // A flag replaces a bad value in the file, as SPIRE's flags replace the file's.
  EXPECT_EQ(*read("agent: {log_level: loud}\n", "info"), "info");
  auto bad = read("agent: {log_level: debug}\n", "loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("agent.log_level: 'loud' is not one of debug, info, warn, error"),
            std::string::npos)
      << bad.status().message();
}

TEST(LogFormatTest, TheFlagWinsAndAnyCaseIsRead) {
  auto read = [](std::string_view yaml, std::string_view flag) -> Result<std::string> {
    SIGIL_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::Parse(yaml, "server.yaml"));
    std::string format = "text";
    ConfigSection server = doc.root().Section("server");
    ReadLogFormat(server, flag, format);
    SIGIL_RETURN_IF_ERROR(doc.Finish());
    return format;
  };
  EXPECT_EQ(*read("server: {}\n", ""), "text");
  EXPECT_EQ(*read("server: {log_format: JSON}\n", ""), "json");
  EXPECT_EQ(*read("server: {log_format: json}\n", "Text"), "text");
  EXPECT_EQ(*read("server: {log_format: xml}\n", "json"), "json");
  auto bad = read("server: {}\n", "logfmt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("server.log_format: 'logfmt' is not one of text, json"), std::string::npos)
      << bad.status().message();
}

// The cases of Go's os.Expand, which SPIRE's -expandEnv uses.
TEST(ExpandEnvTest, ExpandsAsSpiresExpandEnvDoes) {
  const std::map<std::string, std::string> env = {{"TD", "example.org"}, {"PORT", "8081"}, {"1", "one"}};
  auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_EQ(ExpandEnv("trust_domain = \"${TD}\"\nport = $PORT\n", lookup),
            "trust_domain = \"example.org\"\nport = 8081\n");
  EXPECT_EQ(ExpandEnv("$TD.x ${TD}x $TDx", lookup), "example.org.x example.orgx ");  // $TDx names TDx
  EXPECT_EQ(ExpandEnv("unset: [$NOPE] [${NOPE}]", lookup), "unset: [] []");
  EXPECT_EQ(ExpandEnv("$$TD costs $5, ${1}", lookup), "$TD costs , one");
  EXPECT_EQ(ExpandEnv("a $ b, trailing $", lookup), "a $ b, trailing $");
  EXPECT_EQ(ExpandEnv("bad ${} and ${TD", lookup), "bad  and TD");
  EXPECT_EQ(ExpandEnv("no variables", lookup), "no variables");
}

}  // namespace
}  // namespace sigil
