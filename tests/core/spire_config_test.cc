#include "core/spire_config.h"

#include <gtest/gtest.h>

#include <string>

#include "core/hcl.h"
#include "tests/support/config_tree.h"

namespace sigil::spire {
namespace {

using sigil::testing::TreeDifference;

// A small mapping with every rule, shaped as the daemons' are.
constexpr Key kMain[] = {
    {"name", Rule::kCopy, "main.name"},
    {"alias", Rule::kCopy, "main.name"},
    {"country", Rule::kOnlyElement, "main.country"},
    {"tpm_device_path", Rule::kDevicePath, "main.tcti"},
    {"keys_path", Rule::kStem, "main.key_dir"},
    {.spire = "format", .rule = Rule::kMatches, .expected = "pem", .why = "is not read: PEM only"},
    {.spire = "old", .rule = Rule::kRefuse, .why = "is gone; use name"},
    {"directory", Rule::kCheckedAfter, "directory"},
};
constexpr Key kTop[] = {
    {.spire = "main", .rule = Rule::kBlock, .keys = kMain},
    {"section", Rule::kCopy, "moved.section"},
};
constexpr Setting kSoft[] = {{"store.kind", "soft"}};
constexpr Key kDiskData[] = {{"path", Rule::kCopy, "store.path"}};
constexpr PluginType kTypes[] = {
    {"Store", true},
    {"Attestor"},
    {.type = "Upstream", .why = "is not supported here"},
};
constexpr Plugin kPlugins[] = {
    {.type = "Store", .name = "disk", .sigil = "store", .sets = kSoft, .data = kDiskData},
    {.type = "Store", .name = "token", .sigil = "store"},
    {.type = "Store", .name = "memory", .why = "loses its keys; use Store \"disk\""},
    {.type = "Attestor", .name = "a", .sigil = "attestors.a"},
    {.type = "Attestor", .name = "b"},
};
constexpr Mapping kMapping = {kTop, kTypes, kPlugins};

Translation TranslateText(const std::string& hcl) {
  auto tree = ParseHcl(hcl, "test.conf");
  EXPECT_TRUE(tree.ok()) << tree.status().ToString();
  return Translate(tree.ok() ? *tree : YAML::Node(), kMapping);
}

std::string AllProblems(const Translation& translation) {
  std::string all;
  for (const std::string& problem : translation.problems) all += problem + "\n";
  return all;
}

TEST(SpireConfigTest, EveryRuleWritesSigilsTree) {
  Translation t = TranslateText(R"(
main {
  name = "n"
  country = ["US"]
  tpm_device_path = "/dev/tpmrm0"
  keys_path = "/var/lib/spire/keys.json"
  format = "pem"
  old {}
  directory = "/data"
}
section { any = 1, nested { x = "y" } }
plugins {
  Store "disk" { plugin_data { path = "/p" } }
  Attestor "a" { plugin_data {} }
  Attestor "b" {}
  Attestor "c" { enabled = false, plugin_data { anything = 1 } }
}
)");
  EXPECT_TRUE(t.problems.empty()) << AllProblems(t);
  const YAML::Node expected = YAML::Load(R"(
main: {name: n, country: US, tcti: "device:/dev/tpmrm0", key_dir: /var/lib/spire/keys}
moved: {section: {any: 1, nested: {x: y}}}
store: {kind: soft, path: /p}
attestors: {a: {}}
)");
  EXPECT_EQ(TreeDifference(t.tree, expected), "");
  EXPECT_EQ(t.plugins["Store"], std::vector<std::string>{"disk"});
  EXPECT_EQ(t.plugins["Attestor"], (std::vector<std::string>{"a", "b"})) << "a disabled plugin is not named";
  ASSERT_EQ(t.checked.count("directory"), 1u);
  EXPECT_EQ(t.checked["directory"].value.Scalar(), "/data");
  EXPECT_EQ(t.checked["directory"].spire_path, "main.directory");
}

TEST(SpireConfigTest, AnEmptyListOrDevicePathSetsTheDefault) {
  Translation t = TranslateText("main {\n  country = []\n  tpm_device_path = \"\"\n}\n");
  EXPECT_TRUE(t.problems.empty()) << AllProblems(t);
  EXPECT_EQ(TreeDifference(t.tree, YAML::Load("main: {country: ''}")), "");
}

TEST(SpireConfigTest, EveryKeyAndPluginItCannotMapIsRefusedByName) {
  Translation t = TranslateText(R"(
main {
  name = "n"
  alias = "m"
  country = ["US", "DE"]
  format = "spiffe"
  old = "x"
  typo = 1
}
elsewhere = 2
plugins {
  Store "disk" { plugin_data { path = "/p", extra = 1 } }
  Store "token" { plugin_cmd = "/bin/x" }
  Store "memory" {}
  Store "vault" { plugin_data_file = "v.conf" }
  Upstream "disk" { plugin_data {} }
  Unheard "x" {}
  Attestor "a" { enabled = "perhaps", setting = 1 }
}
)");
  const std::string all = AllProblems(t);
  for (const char* expected : {
           "main.alias: sets what main.name already set; give one of the two",
           "main.country: lists 2 values, and Sigil takes one; give one",
           "main.format: \"spiffe\" is not read: PEM only",
           "main.old: is gone; use name",
           "main.typo: unknown key",
           "elsewhere: unknown key",
           "plugins.Store \"disk\".plugin_data.extra: unknown key",
           "plugins.Store \"token\".plugin_cmd: Sigil runs no external plugins",
           "plugins.Store \"memory\": loses its keys; use Store \"disk\"",
           "plugins.Store \"vault\".plugin_data_file: is not read; write the settings in plugin_data",
           "plugins.Store \"vault\": is not available in Sigil; its Store plugins are disk, token",
           "plugins.Store: names \"disk\", \"token\"; give one, as SPIRE takes one Store",
           "plugins.Upstream \"disk\": is not supported here",
           "plugins.Unheard: is not a plugin type; the types are Store, Attestor, Upstream",
           "plugins.Attestor \"a\".enabled: expected true or false",
           "plugins.Attestor \"a\".setting: unknown key",
       }) {
    EXPECT_NE(all.find(expected), std::string::npos) << expected << "\nin:\n" << all;
  }
}

TEST(SpireConfigTest, APluginTypeThatIsNotABlockIsRefused) {
  Translation t = TranslateText("plugins {\n  Attestor = 3\n}\n");
  EXPECT_NE(AllProblems(t).find("plugins.Attestor: expected Attestor \"<name>\" { plugin_data { ... } }"),
            std::string::npos)
      << AllProblems(t);
}

TEST(SpireConfigTest, ProblemsSigilsReadersFindNameTheFilesKeys) {
  Translation t = TranslateText(R"(
section { a = 1 }
plugins {
  Store "disk" { plugin_data { path = "/p" } }
}
)");
  ASSERT_TRUE(t.problems.empty()) << AllProblems(t);
  ConfigDocument doc = Document(std::move(t), "test.conf");
  ConfigSection moved = doc.root().Section("moved").Section("section");
  int64_t a = 0;
  moved.Read("a", a, 5, 10);
  ConfigSection store = doc.root().Section("store");
  store.Problem("path", "is not a folder");
  store.Problem("missing", "is required");
  doc.root().Section("elsewhere").Problem("x", "is Sigil's own");
  const Status finished = doc.Finish();
  ASSERT_FALSE(finished.ok());
  const std::string& m = finished.message();
  EXPECT_EQ(m.rfind("test.conf: ", 0), 0u) << m;
  EXPECT_NE(m.find("section.a: 1 is outside 5..10"), std::string::npos) << m;
  EXPECT_EQ(m.find("moved.section"), std::string::npos) << m;
  EXPECT_NE(m.find("plugins.Store \"disk\".plugin_data.path: is not a folder"), std::string::npos) << m;
  EXPECT_NE(m.find("plugins.Store \"disk\".plugin_data.missing: is required"), std::string::npos) << m;
  EXPECT_NE(m.find("elsewhere.x: is Sigil's own"), std::string::npos) << m;
}

}  // namespace
}  // namespace sigil::spire
