// serverd(8) and agentd(8), as `meson install` puts them in place: groff formats them without a
// warning, and each names every command its binary has, so that a command added to the CLI and
// not to the page fails here. The pages are written by hand (the help cannot say what the config
// file, the files and the signals are); the commands are walked through the binaries' own -h.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/install/installed_tree.h"
#include "tests/install/unit_file.h"
#include "tests/support/process.h"

namespace sigil {
namespace {

using testing::RunProcess;
using testing::TempDir;
using testing::Words;

// The subcommands a CLI11 help text lists under "Subcommands:".
std::vector<std::string> Subcommands(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream lines(help);
  bool listing = false;
  for (std::string line; std::getline(lines, line);) {
    if (line == "Subcommands:") {
      listing = true;
    } else if (listing && line.rfind("  ", 0) == 0) {
      names.push_back(Words(line).at(0));
    } else if (listing && !line.empty()) {
      listing = false;
    }
  }
  return names;
}

// Every command path of `binary` that has no subcommands ({"entry", "create"}), from -h.
void Leaves(const std::string& binary, std::vector<std::string> path, std::vector<std::vector<std::string>>& leaves) {
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), path.begin(), path.end());
  argv.push_back("-h");
  auto help = RunProcess(argv);
  ASSERT_TRUE(help.ok()) << help.status().ToString();
  ASSERT_EQ(help->exit_code, 0) << help->err;
  const auto names = Subcommands(help->out);
  if (names.empty() && !path.empty()) leaves.push_back(path);
  for (const auto& name : names) {
    auto longer = path;
    longer.push_back(name);
    Leaves(binary, longer, leaves);
  }
}

// The flags of `binary run -h` ("--config" -> "-config", as the page writes them).
std::vector<std::string> RunFlags(const std::string& binary) {
  auto help = RunProcess({binary, "run", "-h"});
  EXPECT_TRUE(help.ok() && help->exit_code == 0);
  std::vector<std::string> flags;
  if (!help.ok()) return flags;
  for (const auto& word : Words(help->out)) {
    if (word.rfind("--", 0) == 0 && word.find("help") == std::string::npos) flags.push_back(word.substr(1));
  }
  return flags;
}

// Whether a line of the page, as `man` shows it, starts with `path` or with it among
// alternatives: "entry create|show|update" names {"entry", "show"}. (A short tag such as "run"
// has its description on its own line.)
bool Names(const std::string& page, const std::vector<std::string>& path) {
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    auto words = Words(line);
    if (words.size() < path.size()) continue;
    words.resize(path.size());
    bool match = true;
    for (size_t i = 0; i + 1 < path.size(); ++i) match = match && words[i] == path[i];
    std::istringstream alternatives(words.back());
    bool last = false;
    for (std::string alternative; std::getline(alternatives, alternative, '|');) last |= alternative == path.back();
    if (match && last) return true;
  }
  return false;
}

class ManPagesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(testing::InstallInto(root_).ok()); }

  std::filesystem::path Page() const {
    return root_ / std::string(SIGIL_MANDIR).substr(1) / "man8" / (GetParam() + ".8");
  }
  std::string Binary() const { return std::getenv(GetParam() == "serverd" ? "SIGIL_SERVERD" : "SIGIL_AGENTD"); }
  // The page as man shows it, on lines wide enough that no command is broken.
  std::string Rendered() const {
    auto shown = RunProcess({"man", "-l", Page().string()}, {.env = {{"MANWIDTH", "250"}, {"MANPAGER", "cat"}}});
    EXPECT_TRUE(shown.ok() && shown->exit_code == 0) << (shown.ok() ? shown->err : shown.status().ToString());
    return shown.ok() ? shown->out : "";
  }

  TempDir dir_{"sigil-man"};
  std::filesystem::path root_ = dir_ / "root";
};

TEST_P(ManPagesTest, FormatsWithoutWarnings) {
  ASSERT_TRUE(std::filesystem::exists(Page()));
  auto groff = RunProcess({"groff", "-man", "-ww", "-z", "-Tutf8", Page().string()});
  ASSERT_TRUE(groff.ok()) << groff.status().ToString();
  EXPECT_EQ(groff->exit_code, 0);
  EXPECT_EQ(groff->err, "");
}

TEST_P(ManPagesTest, NamesEveryCommandAndEveryFlagOfRun) {
  const std::string page = Rendered();
  ASSERT_NE(page.find("SIGNALS"), std::string::npos) << page;
  ASSERT_NE(page.find("FILES"), std::string::npos);
  std::vector<std::vector<std::string>> leaves;
  Leaves(Binary(), {}, leaves);
  ASSERT_GE(leaves.size(), 5u);
  leaves.push_back({"run"});  // dispatched before the other commands, so not in their help
  for (const auto& path : leaves) {
    std::string command;
    for (const auto& word : path) command += (command.empty() ? "" : " ") + word;
    EXPECT_TRUE(Names(page, path)) << GetParam() << "(8) does not name '" << command << "'";
  }
  for (const auto& flag : RunFlags(Binary())) {
    EXPECT_NE(page.find(flag), std::string::npos) << GetParam() << "(8) does not name " << flag << " of run";
  }
}

// The check above is no check if it finds anything: a command the page does not have is missed.
TEST(ManPagesNamesTest, AMissingCommandIsMissed) {
  const std::string page = "       entry create|show\n       api fetch x509\n       run    Runs the server\n";
  EXPECT_TRUE(Names(page, {"entry", "show"}));
  EXPECT_TRUE(Names(page, {"api", "fetch", "x509"}));
  EXPECT_FALSE(Names(page, {"entry", "delete"}));
  EXPECT_FALSE(Names(page, {"api", "fetch", "jwt"}));
  EXPECT_TRUE(Names(page, {"run"}));
  EXPECT_FALSE(Names(page, {"fetch"}));
  EXPECT_FALSE(Names(page, {"Runs"}));
}

INSTANTIATE_TEST_SUITE_P(Daemons, ManPagesTest, ::testing::Values("serverd", "agentd"));

}  // namespace
}  // namespace sigil
