// tools/package builds the Debian package from this build, and dpkg installs it into a root of
// the test's own, removes it and purges it, as `dpkg -i`, `dpkg -r` and `dpkg -P` would on a
// host. That root has its own dpkg database (--root: <root>/var/lib/dpkg) and log; the
// maintainer scripts run outside it (--force-script-chrootless, since the root holds no shell)
// with DPKG_ROOT naming it, and they act inside it: the users are made in <root>/etc/passwd,
// no service of this host is touched. While dpkg runs, the host's user databases are copies
// (a mount namespace of its own), which must come out unchanged; the host's dpkg database,
// users and groups are compared before and after. dpkg installs files as root, and the mount
// namespace needs it too, so this test needs root.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/install/unit_file.h"
#include "tests/support/process.h"
#include "tests/support/process_usage.h"

namespace sigil {
namespace {

namespace fs = std::filesystem;
using testing::ProcessOutput;
using testing::ReadFile;
using testing::RunProcess;
using testing::TempDir;
using testing::UnitFile;
using testing::Words;

const std::string kSource = SIGIL_SOURCE_ROOT;
const std::string kVersion = SIGIL_PROJECT_VERSION;

ProcessOutput Command(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(90)) {
  auto out = RunProcess(argv, {}, timeout);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? *out : ProcessOutput{};
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

constexpr const char* kUserDatabases[] = {"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"};

// What of the host a package install could change, to compare before and after.
std::string HostState() {
  return ReadFile("/var/lib/dpkg/status") + ReadFile("/etc/passwd") + ReadFile("/etc/group") +
         Command({"dpkg-query", "-W", "-f=${Status}", "sigil"}).out;
}

class PackageTest : public ::testing::Test {
 protected:
  // One package for the tests of this binary.
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || std::string(SIGIL_BINDIR) != "/usr/bin") return;
    package_dir_ = new TempDir("sigil-deb");
    std::vector<std::string> package = {kSource + "/tools/package", "--build-dir", SIGIL_BUILD_ROOT, "--out",
                                        package_dir_->path().string()};
    // The sanitizer builds' binaries are several times larger (480 MB stripped under ASan+UBSan),
    // and the suite runs beside: installing and reading them took over 90 s there, and xz
    // compressing them over 300 s. The normal build makes the package as it is shipped.
    if (testing::kSanitizerTimeFactor > 1) package.push_back("--fast");
    const ProcessOutput built = Command(package, std::chrono::seconds(300));
    ASSERT_EQ(built.exit_code, 0) << built.err;
    built_deb_ = Trimmed(built.out);
  }
  static void TearDownTestSuite() {
    delete package_dir_;
    package_dir_ = nullptr;
  }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "dpkg installs files owned by root: needs root";
    // A build folder made before prefix /usr was the default keeps /usr/local, which no
    // Debian package may use; tools/package refuses it.
    if (std::string(SIGIL_BINDIR) != "/usr/bin" || std::string(SIGIL_SYSCONFDIR) != "/etc") {
      GTEST_SKIP() << "this build installs to " SIGIL_BINDIR " and " SIGIL_SYSCONFDIR "; tools/package needs "
                      "/usr and /etc: meson configure " SIGIL_BUILD_ROOT " -Dprefix=/usr -Dsysconfdir=/etc -Dlocalstatedir=/var";
    }
    deb_ = built_deb_;
    ASSERT_TRUE(!deb_.empty() && fs::exists(deb_)) << "tools/package made no package";
    // An empty dpkg database of the root's own.
    fs::create_directories(root_ / "var/lib/dpkg/info");
    fs::create_directories(root_ / "var/lib/dpkg/updates");
    testing::WriteFile(root_ / "var/lib/dpkg/status", "");
    host_before_ = HostState();
  }

  void TearDown() override {
    if (!host_before_.empty()) {
      EXPECT_EQ(HostState(), host_before_) << "the host's dpkg database or users changed";
    }
  }

  // dpkg on the root, in a mount namespace of its own where the host's user databases are
  // copies and the host's Sigil state and unit links lie under empty folders: a maintainer
  // script that ignored DPKG_ROOT changes those only, and is caught by the comparison after.
  ProcessOutput Dpkg(std::vector<std::string> args) {
    std::string shadow = "set -e; ";
    for (const char* file : kUserDatabases) {
      const fs::path copy = dir_ / "host" / (file + 1);
      if (!fs::exists(copy)) {
        fs::create_directories(copy.parent_path());
        fs::copy_file(file, copy);
      }
      shadow += "mount --bind '" + copy.string() + "' " + file + "; ";
    }
    for (const char* folder : {"/var/lib/sigil-server", "/var/lib/sigil-agent", "/etc/systemd/system"}) {
      if (fs::is_directory(folder)) shadow += "mount -t tmpfs none " + std::string(folder) + "; ";
    }
    std::vector<std::string> argv = {"unshare", "--mount", "--propagation", "private", "sh", "-c",
                                     shadow + "exec \"$@\"", "sh", "dpkg", "--root=" + root_.string(),
                                     "--log=" + (dir_ / "dpkg.log").string(), "--force-script-chrootless"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOutput out = Command(argv);
    for (const char* file : kUserDatabases) {
      EXPECT_EQ(ReadFile(dir_ / "host" / (file + 1)), ReadFile(file)) << "dpkg " << args.at(0) << " changed " << file;
    }
    return out;
  }

  std::string Field(const std::string& name) { return Trimmed(Command({"dpkg-deb", "--field", deb_, name}).out); }
  bool Installed(const std::string& path) const { return fs::exists(root_ / path.substr(1)); }

  static inline TempDir* package_dir_ = nullptr;
  static inline std::string built_deb_;

  TempDir dir_{"sigil-package"};
  fs::path root_ = dir_ / "root";
  std::string deb_;
  std::string host_before_;
};

TEST_F(PackageTest, ControlNamesVersionArchitectureDependsAndConffiles) {
  EXPECT_EQ(Field("Package"), "sigil");
  EXPECT_EQ(Field("Version"), kVersion);
  EXPECT_EQ(Field("Architecture"), Trimmed(Command({"dpkg", "--print-architecture"}).out));
  const std::string depends = Field("Depends");
  for (const char* library : {"libc6", "libssl3", "libsqlite3-0", "libtss2-esys-3.0.2-0", "libtss2-tctildr0"}) {
    EXPECT_NE(depends.find(library), std::string::npos) << depends;
  }
  EXPECT_EQ(Command({"dpkg-deb", "--info", deb_, "conffiles"}).out, "/etc/sigil/agent.yaml\n/etc/sigil/server.yaml\n");
}

TEST_F(PackageTest, InstallsRemovesAndPurgesInARootOfItsOwn) {
  const ProcessOutput installed = Dpkg({"--force-depends", "-i", deb_});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;
  EXPECT_NE(Dpkg({"-s", "sigil"}).out.find("Status: install ok installed"), std::string::npos);

  // The binaries run and say their release.
  for (const char* binary : {"/usr/bin/serverd", "/usr/bin/agentd"}) {
    const ProcessOutput version = Command({(root_ / (binary + 1)).string(), "--version"});
    EXPECT_EQ(version.exit_code, 0) << binary << ": " << version.err;
    EXPECT_EQ(Trimmed(version.out), kVersion) << binary;
  }
  // Each unit's ExecStart= binary and -config file are where the unit says.
  std::vector<std::string> gone_on_remove;
  for (const char* name : {"sigil-server", "sigil-agent"}) {
    const std::string unit_path = "/lib/systemd/system/" + std::string(name) + ".service";
    ASSERT_TRUE(Installed(unit_path)) << unit_path;
    const auto exec = Words(UnitFile::Read(root_ / unit_path.substr(1)).Get("ExecStart"));
    ASSERT_EQ(exec.size(), 4u);
    EXPECT_TRUE(Installed(exec[0])) << exec[0];
    EXPECT_EQ(::access((root_ / exec[0].substr(1)).c_str(), X_OK), 0) << exec[0];
    EXPECT_EQ(exec[2], "-config");
    EXPECT_TRUE(Installed(exec[3])) << exec[3];
    gone_on_remove.insert(gone_on_remove.end(),
                          {exec[0], unit_path, "/usr/lib/sysusers.d/" + std::string(name) + ".conf"});
  }
  EXPECT_TRUE(Installed("/usr/share/man/man8/serverd.8.gz"));
  EXPECT_TRUE(Installed("/usr/share/man/man8/agentd.8.gz"));
  // postinst made the units' users, inside the root.
  const std::string passwd = ReadFile(root_ / "etc/passwd");
  EXPECT_NE(passwd.find("sigil-server:x:"), std::string::npos) << passwd;
  EXPECT_NE(passwd.find(":/var/lib/sigil-agent:"), std::string::npos) << passwd;

  // Removed: the files go, the conffiles and the users stay.
  const ProcessOutput removed = Dpkg({"-r", "sigil"});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  for (const auto& path : gone_on_remove) EXPECT_FALSE(Installed(path)) << path;
  EXPECT_FALSE(Installed("/usr/share/man/man8/serverd.8.gz"));
  EXPECT_TRUE(Installed("/etc/sigil/server.yaml"));
  EXPECT_NE(Dpkg({"-s", "sigil"}).out.find("Status: deinstall ok config-files"), std::string::npos);
  EXPECT_NE(ReadFile(root_ / "etc/passwd").find("sigil-agent:x:"), std::string::npos);

  // Purged: the conffiles, the state the services would have made, and the users go.
  fs::create_directories(root_ / "var/lib/sigil-server/keys");
  const ProcessOutput purged = Dpkg({"-P", "sigil"});
  ASSERT_EQ(purged.exit_code, 0) << purged.out << purged.err;
  EXPECT_FALSE(Installed("/etc/sigil/server.yaml"));
  EXPECT_FALSE(Installed("/etc/sigil/agent.yaml"));
  EXPECT_FALSE(Installed("/var/lib/sigil-server"));
  const std::string after = ReadFile(root_ / "etc/passwd");
  EXPECT_EQ(after.find("sigil-server:"), std::string::npos) << after;
  EXPECT_EQ(after.find("sigil-agent:"), std::string::npos) << after;
  EXPECT_NE(Dpkg({"-s", "sigil"}).exit_code, 0);
}

}  // namespace
}  // namespace sigil
