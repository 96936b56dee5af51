#include "agentd/cli/cli.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>

#include "agentd/cli/output.h"
#include "agentd/workload/workload_api.h"
#include "core/base64url.h"
#include "core/cli/command_line.h"
#include "core/cli_args.h"
#include "core/trust_bundle.h"
#include "core/x509_ca.h"
#include "agentd/workload/health.pb.h"
#include "core/file.h"
#include "hw/durable_file.h"
#include "transport/grpc_client.h"
#include "agentd/workload/workload.pb.h"

namespace sigil::agentd {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kSpiffeEndpointSocket[] = "SPIFFE_ENDPOINT_SOCKET";

// Certificates as a Go program prints a time.Time in UTC.
std::string GoTime(TimePoint when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return text;
}

// The API carries certificates as DER, one after another.
Result<std::vector<X509Ptr>> CertsFromConcatenatedDer(const std::string& der) {
  std::vector<X509Ptr> certs;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const auto* end = p + der.size();
  while (p < end) {
    X509Ptr cert(d2i_X509(nullptr, &p, end - p));
    if (!cert) return InvalidArgumentError("the agent sent a certificate that does not parse");
    certs.push_back(std::move(cert));
  }
  return certs;
}

Result<std::string> PemOf(const std::string& der) {
  SIGIL_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, CertsFromConcatenatedDer(der));
  std::vector<X509*> raw;
  for (const auto& cert : certs) raw.push_back(cert.get());
  return CertsToPem(raw);
}

std::string KeyPem(const std::string& pkcs8_der) {
  std::string pem = "-----BEGIN PRIVATE KEY-----\n";
  const std::string body = Base64Encode(AsBytes(pkcs8_der));
  for (size_t i = 0; i < body.size(); i += 64) pem += body.substr(i, 64) + "\n";
  return pem + "-----END PRIVATE KEY-----\n";
}

Status WritePublicFile(const std::filesystem::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(Code::kPermissionDenied, "opening " + path.string());
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  const int saved = errno;
  ::close(fd);
  if (!written) {
    errno = saved;
    return ErrnoError(Code::kUnavailable, "writing " + path.string());
  }
  return Status::Ok();
}

transport::GrpcCallOptions CallOptions(std::optional<std::chrono::milliseconds> timeout) {
  transport::GrpcCallOptions options;
  options.metadata = {{kWorkloadSecurityHeader, "true"}};
  options.timeout = timeout;
  return options;
}

// "[td] CA #n Valid After" lines for each federated bundle, by trust domain, as spire-agent
// prints them under every SVID.
Result<std::string> FederatedBundleLines(const X509SVIDResponse& response) {
  const std::map<std::string, std::string> sorted(response.federated_bundles().begin(),
                                                  response.federated_bundles().end());
  std::string lines;
  for (const auto& [td_id, der] : sorted) {
    auto bundle = CertValiditiesFromDer(AsBytes(der));
    if (!bundle.ok()) {
      return InvalidArgumentError("the agent sent a bundle for " + td_id + " that does not parse: " +
                                  bundle.status().message());
    }
    for (size_t i = 0; i < bundle->size(); ++i) {
      const std::string ca = "[" + td_id + "] CA #" + std::to_string(i + 1);
      lines += ca + " Valid After:\t" + GoTime((*bundle)[i].not_before) + "\n";
      lines += ca + " Valid Until:\t" + GoTime((*bundle)[i].not_after) + "\n";
    }
  }
  return lines;
}

Status PrintX509Response(const X509SVIDResponse& response, Clock::duration waited,
                         std::ostream& out) {
  SIGIL_ASSIGN_OR_RETURN(std::string federated, FederatedBundleLines(response));
  out << "Received " << response.svids_size() << (response.svids_size() == 1 ? " svid" : " svids") << " after "
      << FormatGoDuration(waited) << "\n\n";
  for (const auto& svid : response.svids()) {
    // Only the validity is shown, so it is read from the DER rather than through d2i_X509,
    // whose public-key decoding would be a good part of this command's run time.
    auto chain = CertValiditiesFromDer(AsBytes(svid.x509_svid()));
    if (!chain.ok()) return InvalidArgumentError("the agent sent an SVID that does not parse: " + chain.status().message());
    auto bundle = CertValiditiesFromDer(AsBytes(svid.bundle()));
    if (!bundle.ok()) return InvalidArgumentError("the agent sent a bundle that does not parse: " + bundle.status().message());
    out << "SPIFFE ID:\t\t" << svid.spiffe_id() << "\n";
    if (!svid.hint().empty()) out << "Hint:\t\t\t" << svid.hint() << "\n";
    out << "SVID Valid After:\t" << GoTime((*chain)[0].not_before) << "\n";
    out << "SVID Valid Until:\t" << GoTime((*chain)[0].not_after) << "\n";
    for (size_t i = 1; i < chain->size(); ++i) {
      out << "Intermediate #" << i << " Valid After:\t" << GoTime((*chain)[i].not_before) << "\n";
      out << "Intermediate #" << i << " Valid Until:\t" << GoTime((*chain)[i].not_after) << "\n";
    }
    for (size_t i = 0; i < bundle->size(); ++i) {
      out << "CA #" << i + 1 << " Valid After:\t" << GoTime((*bundle)[i].not_before) << "\n";
      out << "CA #" << i + 1 << " Valid Until:\t" << GoTime((*bundle)[i].not_after) << "\n";
    }
    out << federated << "\n";
  }
  return Status::Ok();
}

// svid.N.pem, svid.N.key (owner only), bundle.N.pem and federated_bundle.N.M.pem, as
// spire-agent names them.
Status WriteX509Response(const X509SVIDResponse& response, const std::filesystem::path& dir,
                         std::ostream& out) {
  std::map<std::string, std::string> federated(response.federated_bundles().begin(),
                                               response.federated_bundles().end());
  for (int i = 0; i < response.svids_size(); ++i) {
    const auto& svid = response.svids(i);
    const auto svid_path = dir / ("svid." + std::to_string(i) + ".pem");
    const auto key_path = dir / ("svid." + std::to_string(i) + ".key");
    const auto bundle_path = dir / ("bundle." + std::to_string(i) + ".pem");
    SIGIL_ASSIGN_OR_RETURN(std::string chain_pem, PemOf(svid.x509_svid()));
    SIGIL_ASSIGN_OR_RETURN(std::string bundle_pem, PemOf(svid.bundle()));
    out << "Writing SVID #" << i << " to file " << svid_path.string() << ".\n";
    SIGIL_RETURN_IF_ERROR(WritePublicFile(svid_path, chain_pem));
    out << "Writing key #" << i << " to file " << key_path.string() << ".\n";
    const std::string key_pem = KeyPem(svid.x509_svid_key());
    SIGIL_RETURN_IF_ERROR(hw::WriteFileDurably(key_path, AsBytes(key_pem), 0600, "SVID key file"));
    out << "Writing bundle #" << i << " to file " << bundle_path.string() << ".\n";
    SIGIL_RETURN_IF_ERROR(WritePublicFile(bundle_path, bundle_pem));
    int j = 0;
    for (const auto& [td_id, der] : federated) {
      const auto path =
          dir / ("federated_bundle." + std::to_string(i) + "." + std::to_string(j) + ".pem");
      SIGIL_ASSIGN_OR_RETURN(std::string pem, PemOf(der));
      out << "Writing federated bundle #" << j << " for trust domain " << td_id << " to file "
          << path.string() << ".\n";
      SIGIL_RETURN_IF_ERROR(WritePublicFile(path, pem));
      ++j;
    }
  }
  return Status::Ok();
}

// The answer as spire-agent's -output json prints it.
Status PrintJson(const std::vector<const google::protobuf::Message*>& messages, std::ostream& out) {
  SIGIL_ASSIGN_OR_RETURN(std::string json, WorkloadApiJson(messages));
  out << json;
  return Status::Ok();
}

Status FetchX509(const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format,
                 const std::string& write_dir, bool silent, std::ostream& out) {
  const auto started = Clock::now();
  std::optional<X509SVIDResponse> first;
  Status parse = Status::Ok();
  Status call = transport::GrpcServerStreamingBlocking(
      endpoint, "/SpiffeWorkloadAPI/FetchX509SVID", X509SVIDRequest().SerializeAsString(),
      [&](std::string message) {
        first.emplace();
        if (!first->ParseFromString(message))
          parse = InvalidArgumentError("the agent sent a malformed X509SVIDResponse");
        return false;
      },
      CallOptions(timeout));
  SIGIL_RETURN_IF_ERROR(call);
  SIGIL_RETURN_IF_ERROR(parse);
  if (!first) return UnavailableError("the agent ended the stream without an answer");
  if (format == OutputFormat::kJson) return PrintJson({&*first}, out);
  std::ostringstream discard;
  std::ostream& text = silent ? discard : out;
  SIGIL_RETURN_IF_ERROR(PrintX509Response(*first, Clock::now() - started, text));
  if (!write_dir.empty()) SIGIL_RETURN_IF_ERROR(WriteX509Response(*first, write_dir, text));
  return Status::Ok();
}

Status Watch(const transport::Endpoint& endpoint, std::ostream& out) {
  auto last = Clock::now();
  Status failure = Status::Ok();
  Status call = transport::GrpcServerStreamingBlocking(
      endpoint, "/SpiffeWorkloadAPI/FetchX509SVID", X509SVIDRequest().SerializeAsString(),
      [&](std::string message) {
        X509SVIDResponse response;
        if (!response.ParseFromString(message)) {
          failure = InvalidArgumentError("the agent sent a malformed X509SVIDResponse");
          return false;
        }
        const auto now = Clock::now();
        failure = PrintX509Response(response, now - last, out);
        out.flush();
        last = now;
        return failure.ok();
      },
      CallOptions(std::nullopt));
  SIGIL_RETURN_IF_ERROR(call);
  return failure;
}

Status FetchJwt(const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format,
                const std::vector<std::string>& audience, const std::string& spiffe_id,
                std::ostream& out) {
  JWTSVIDRequest request;
  for (const auto& a : audience) request.add_audience(a);
  request.set_spiffe_id(spiffe_id);
  SIGIL_ASSIGN_OR_RETURN(
      std::string answer,
      transport::GrpcUnaryBlocking(endpoint, "/SpiffeWorkloadAPI/FetchJWTSVID",
                                   request.SerializeAsString(), CallOptions(timeout)));
  JWTSVIDResponse svids;
  if (!svids.ParseFromString(answer))
    return InvalidArgumentError("the agent sent a malformed JWTSVIDResponse");

  std::optional<JWTBundlesResponse> bundles;
  Status call = transport::GrpcServerStreamingBlocking(
      endpoint, "/SpiffeWorkloadAPI/FetchJWTBundles", JWTBundlesRequest().SerializeAsString(),
      [&](std::string message) {
        bundles.emplace();
        if (!bundles->ParseFromString(message)) bundles.reset();
        return false;
      },
      CallOptions(timeout));
  SIGIL_RETURN_IF_ERROR(call);
  if (!bundles) return UnavailableError("the agent sent no JWT bundles");
  if (format == OutputFormat::kJson) return PrintJson({&svids, &*bundles}, out);

  for (const auto& svid : svids.svids()) {
    out << "token(" << svid.spiffe_id() << "):\n\t" << svid.svid() << "\n";
    if (!svid.hint().empty()) out << "hint(" << svid.spiffe_id() << "):\n\t" << svid.hint() << "\n";
  }
  const std::map<std::string, std::string> sorted(bundles->bundles().begin(),
                                                  bundles->bundles().end());
  for (const auto& [td_id, jwks] : sorted) out << "bundle(" << td_id << "):\n\t" << jwks << "\n";
  return Status::Ok();
}

// spire-agent's wording: a token the agent rejects is "not valid"; anything else is an error.
int ValidateJwt(const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format,
                const std::string& audience, const std::string& token, std::ostream& out,
                std::ostream& err) {
  ValidateJWTSVIDRequest request;
  request.set_audience(audience);
  request.set_svid(token);
  auto answer = transport::GrpcUnaryBlocking(endpoint, "/SpiffeWorkloadAPI/ValidateJWTSVID",
                                             request.SerializeAsString(), CallOptions(timeout));
  if (!answer.ok()) {
    if (answer.status().code() == Code::kInvalidArgument) {
      err << "SVID is not valid: " << answer.status().message() << "\n";
    } else {
      err << "Error: unable to validate JWT SVID: " << answer.status().ToString() << "\n";
    }
    return 1;
  }
  ValidateJWTSVIDResponse response;
  if (!response.ParseFromString(*answer)) {
    err << "Error: the agent sent a malformed ValidateJWTSVIDResponse\n";
    return 1;
  }
  if (format == OutputFormat::kJson) {
    auto json = WorkloadApiJson({&response});
    if (!json.ok()) {
      err << "Error: " << json.status().message() << "\n";
      return 1;
    }
    out << *json;
    return 0;
  }
  std::string claims;
  if (!google::protobuf::util::MessageToJsonString(response.claims(), &claims).ok()) {
    err << "Error: the agent sent claims that do not print as JSON\n";
    return 1;
  }
  out << "SVID is valid.\n";
  out << "SPIFFE ID : " << response.spiffe_id() << "\n";
  out << "Claims    : " << claims << "\n";
  return 0;
}

// Deep (the default): the agent must say SERVING. Shallow: it need only answer.
int HealthCheck(const transport::Endpoint& endpoint, bool shallow, bool verbose, std::ostream& out,
                std::ostream& err) {
  if (verbose) out << "Checking agent health...\n";
  transport::GrpcCallOptions options;
  options.timeout = std::chrono::seconds(5);
  auto answer = transport::GrpcUnaryBlocking(
      endpoint, "/grpc.health.v1.Health/Check",
      grpc::health::v1::HealthCheckRequest().SerializeAsString(), options);
  if (!answer.ok()) {
    if (verbose) err << "Failed to check health: " << answer.status().ToString() << "\n";
    err << "Agent is unhealthy: unable to determine health\n";
    return 1;
  }
  grpc::health::v1::HealthCheckResponse response;
  if (!response.ParseFromString(*answer)) {
    err << "Agent is unhealthy: malformed health check response\n";
    return 1;
  }
  if (!shallow && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    err << "Agent is unhealthy: agent is not serving: "
        << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
    return 1;
  }
  out << "Agent is healthy.\n";
  return 0;
}

}  // namespace

Result<transport::Endpoint> WorkloadEndpoint(const std::string& socket_path,
                                             const char* endpoint_env) {
  if (!socket_path.empty()) return transport::Endpoint::Unix(socket_path);
  if (endpoint_env != nullptr && *endpoint_env != '\0') {
    std::string_view value = endpoint_env;
    if (!value.starts_with("unix:")) {
      return InvalidArgumentError(std::string(kSpiffeEndpointSocket) +
                                  " must be unix:///path or unix:path, not '" + std::string(value) +
                                  "'");
    }
    auto endpoint = transport::Endpoint::Parse(value);
    if (!endpoint.ok()) {
      return InvalidArgumentError(std::string(kSpiffeEndpointSocket) + ": " +
                                  endpoint.status().message());
    }
    return endpoint;
  }
  return transport::Endpoint::Unix(kDefaultWorkloadSocket);
}

namespace {

// What the command line gave. The chosen command's callback sets `action`, which runs once the
// endpoint, timeout and output format are known.
struct Invocation {
  using Action = std::function<int(const transport::Endpoint&, std::chrono::milliseconds, OutputFormat)>;
  Action action;
  std::string socket_path;
  std::string timeout_text = "5s";
  std::string output_text = "pretty";
  std::string deprecated_format;  // fetch jwt's -format, SPIRE's older name of -output
  std::string write_dir;          // fetch x509
  bool silent = false;
  std::vector<std::string> audience;  // fetch jwt
  std::string spiffe_id;
  std::string validate_audience;  // validate jwt
  std::string token;
  bool shallow = false;  // healthcheck
  bool verbose = false;
};

void AddSocket(CLI::App* command, Invocation& in) {
  command->add_option("--socketPath", in.socket_path,
                      std::string("Path to the SPIFFE Workload API socket (default ") + kDefaultWorkloadSocket +
                          ", or $SPIFFE_ENDPOINT_SOCKET)");
}

void AddTimeoutAndOutput(CLI::App* command, Invocation& in) {
  command->add_option("--timeout", in.timeout_text, "Time to wait for a response")->default_str("5s");
  command->add_option("--output", in.output_text, "Desired output format (pretty, json); default: pretty.");
  AddSocket(command, in);
}

// Errors of the API commands end as one line on `err`.
int Report(const Status& status, std::ostream& err) {
  if (status.ok()) return 0;
  err << "Error: " << status.ToString() << "\n";
  return 1;
}

void AddFetchCommands(CLI::App* api, Invocation& in, std::ostream& out, std::ostream& err) {
  CLI::App* fetch = api->add_subcommand("fetch", "Fetch SVIDs (X509-SVIDs when no kind is named)")->require_subcommand(1);

  CLI::App* x509 = fetch->add_subcommand("x509", "Fetch X509-SVIDs and their bundles");
  x509->add_option("--write", in.write_dir,
                   "Write the SVIDs, keys and bundles into this folder (only with the pretty output format)");
  x509->add_flag("--silent", in.silent, "Print nothing to standard output (only with the pretty output format)");
  AddTimeoutAndOutput(x509, in);
  x509->callback([&] {
    in.action = [&](const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format) {
      // spire-agent ignores both with -output json; refused here rather than dropped unsaid.
      for (const auto& [given, flag] : {std::pair{!in.write_dir.empty(), "-write"}, std::pair{in.silent, "-silent"}}) {
        if (format == OutputFormat::kJson && given) {
          err << "Error: " << flag << " is only available for the pretty output format\n";
          return 1;
        }
      }
      return Report(FetchX509(endpoint, timeout, format, in.write_dir, in.silent, out), err);
    };
  });

  CLI::App* jwt = fetch->add_subcommand("jwt", "Fetch a JWT-SVID");
  // As SPIRE's agent: a comma-separated list ("a,b" asks for a token naming both).
  jwt->add_option("--audience", in.audience, "Audiences the token is for, comma-separated; repeatable")
      ->delimiter(',')
      ->required();
  jwt->add_option("--spiffeID", in.spiffe_id, "The SPIFFE ID of the token (default: every identity)");
  jwt->add_option("--format", in.deprecated_format, "deprecated; use -output");
  AddTimeoutAndOutput(jwt, in);
  jwt->callback([&] {
    in.action = [&](const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format) {
      return Report(FetchJwt(endpoint, timeout, format, in.audience, in.spiffe_id, out), err);
    };
  });
}

void AddOtherCommands(CLI::App& app, CLI::App* api, Invocation& in, std::ostream& out, std::ostream& err) {
  // spire-agent's watch has no -output; neither has this one.
  CLI::App* watch = api->add_subcommand("watch", "Print every X509-SVID update until interrupted");
  AddSocket(watch, in);
  watch->callback([&] {
    in.action = [&](const transport::Endpoint& endpoint, std::chrono::milliseconds, OutputFormat) {
      return Report(Watch(endpoint, out), err);
    };
  });

  CLI::App* validate = api->add_subcommand("validate", "Validate SVIDs")->require_subcommand(1);
  CLI::App* validate_jwt = validate->add_subcommand("jwt", "Validate a JWT-SVID");
  validate_jwt->add_option("--audience", in.validate_audience, "The audience the token must name")->required();
  validate_jwt->add_option("--svid", in.token, "The token to validate")->required();
  AddTimeoutAndOutput(validate_jwt, in);
  validate_jwt->callback([&] {
    in.action = [&](const transport::Endpoint& endpoint, std::chrono::milliseconds timeout, OutputFormat format) {
      return ValidateJwt(endpoint, timeout, format, in.validate_audience, in.token, out, err);
    };
  });

  CLI::App* healthcheck = app.add_subcommand("healthcheck", "Check that the agent is up and serving");
  healthcheck->add_flag("--shallow", in.shallow, "Only check that the agent answers");
  healthcheck->add_flag("--verbose", in.verbose, "Say what was checked");
  AddSocket(healthcheck, in);
  healthcheck->callback([&] {
    in.action = [&](const transport::Endpoint& endpoint, std::chrono::milliseconds, OutputFormat) {
      return HealthCheck(endpoint, in.shallow, in.verbose, out, err);
    };
  });
}

// spire-agent's `api fetch` is `api fetch x509`: with no kind named, x509 is. `api fetch -h`
// still lists both kinds.
std::vector<std::string> WithFetchKind(std::vector<std::string> args) {
  if (args.size() < 2 || args[0] != "api" || args[1] != "fetch") return args;
  const bool kind_named = args.size() > 2 && !args[2].starts_with("-");
  const bool help = args.size() > 2 && (args[2] == "-h" || args[2] == "--help" || args[2] == "-help");
  if (!kind_named && !help) args.insert(args.begin() + 2, "x509");
  return args;
}

// The -output format, or -format's where only the deprecated name was given.
Result<OutputFormat> ChosenFormat(const Invocation& in) {
  if (!in.deprecated_format.empty() && in.output_text != "pretty" && in.output_text != in.deprecated_format) {
    return InvalidArgumentError("-format and -output name different formats; give -output alone");
  }
  const std::string& name = in.deprecated_format.empty() ? in.output_text : in.deprecated_format;
  auto format = ParseOutputFormat(name);
  if (!format.ok()) return InvalidArgumentError("-output: " + format.status().message());
  return format;
}

}  // namespace

int RunWorkloadCommand(const std::vector<std::string>& raw_args, std::ostream& out, std::ostream& err) {
  // These commands only parse and print certificates and keys: the system's openssl.cnf
  // (providers, engines) has nothing for them, and reading it was a quarter of a fetch.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  CLI::App app{"Sigil agent commands", "agentd"};
  app.require_subcommand(1);
  // main runs these two before this parser; they are here to be listed in the help.
  app.add_subcommand("run", "Run the agent (agentd run -h for its flags)");
  app.add_subcommand("validate", "Check the agent's config file without starting it");
  Invocation in;
  CLI::App* api = app.add_subcommand("api", "Talk to the agent's Workload API")->require_subcommand(1);
  AddFetchCommands(api, in, out, err);
  AddOtherCommands(app, api, in, out, err);

  if (std::optional<int> exit_code = ParseCommandLine(app, WithFetchKind(raw_args), out, err)) return *exit_code;
  if (!in.action) return 1;
  auto timeout = ParseGoDuration(in.timeout_text);
  if (!timeout.ok()) {
    err << "Error: -timeout: " << timeout.status().message() << "\n";
    return 1;
  }
  auto format = ChosenFormat(in);
  if (!format.ok()) {
    err << "Error: " << format.status().message() << "\n";
    return 1;
  }
  auto endpoint = WorkloadEndpoint(in.socket_path, std::getenv(kSpiffeEndpointSocket));
  if (!endpoint.ok()) {
    err << "Error: " << endpoint.status().message() << "\n";
    return 1;
  }
  return in.action(*endpoint, *timeout, *format);
}

}  // namespace sigil::agentd
