// Writes the seed corpora of tests/fuzz: a handful of valid inputs per target, made with the
// same code that makes them in production (CSRs, JWT-SVIDs, bundles, flatbuffers messages),
// plus the text seeds. Run it from the repository root after a change to a format:
//   build/tests/fuzz/make_fuzz_corpus tests/fuzz/corpus
// Keys are fresh on every run except the JWT key (fuzz_support.cc), so the bytes change while
// the shapes do not.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/base64url.h"
#include "core/csr.h"
#include "core/jwt_svid.h"
#include "core/trust_bundle.h"
#include "core/wire/convert.h"
#include "core/x509_svid.h"
#include "hw/soft_key_store.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/grpc.h"

using namespace sigil;

namespace {

std::filesystem::path root;

void Write(const std::string& target, const std::string& name, std::string_view bytes) {
  const auto dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
void Write(const std::string& target, const std::string& name, const Bytes& bytes) {
  Write(target, name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

template <typename T>
T Must(Result<T> result, const char* what) {
  if (!result.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, result.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*result);
}

std::shared_ptr<Signer> NewSigner(KeyType type) {
  return Must(hw::MakeSoftSigner(Must(hw::GenerateSoftKey(type), "key")), "signer");
}

void TextSeeds() {
  const std::map<std::string, std::vector<std::string>> seeds = {
      {"spiffe_id", {"spiffe://example.org/web", "spiffe://example.org", "spiffe://a-b.c_d.example/x/y.z/~-_",
                     "example.org", "spiffe://example.org/spire/agent/join_token/abc"}},
      {"selector", {"unix:uid:1001", "unix:uid:1001\nunix:gid:10\nunix:path:/usr/bin/app", "k8s:pod-label:app:web",
                    "exact\nunix:user:root", "superset\nunix:sha256:0123abcd"}},
      {"grpc_timeout", {"100m", "5S", "1H", "99999999H", "7u", "99999999n"}},
      {"admin_json",
       {R"({"entries":[{"spiffe_id":{"trust_domain":"example.org","path":"/web"},"parent_id":"spiffe://example.org/host","selectors":[{"type":"unix","value":"uid:1001"}],"x509_svid_ttl":600,"jwt_svid_ttl":"300","dns_names":["web.example.org"],"federates_with":["other.org"],"admin":false,"expires_at":"0","hint":"h"}]})",
        R"({"filter":{"by_spiffe_id":"spiffe://example.org/web","by_parent_id":{"trust_domain":"example.org","path":"/host"},"by_selectors":{"selectors":["unix:uid:1001"],"match":"MATCH_EXACT"}}})",
        R"({"ids":["b7c3a2d4-0000-4000-8000-000000000001"],"id":"x","trust_domains":["other.org"]})",
        R"({"bundles":[{"trust_domain":"other.org","pem":"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"},{"trust_domain":"third.org","jwks":"{\"keys\":[]}"}]})",
        R"({"ttl":600,"agent_id":"spiffe://example.org/host/rack7"})",
        R"({"id":{"trust_domain":"example.org","path":"/spire/agent/x"},"attestation_type":"join_token","x509svid_serial_number":"0a","x509svid_expires_at":"1900000000","selectors":[{"type":"join_token","value":"abc"}],"banned":true})"}},
      {"server_config",
       {"server:\n  trust_domain: example.org\n",
        "server:\n  trust_domain: example.org\n  bind_address: 127.0.0.1\n  bind_port: 8081\n  socket_path: /tmp/s/api.sock\n"
        "  admin_uids: [\"0\", \"1000\"]\n  data_dir: /var/lib/sigil\n  log_level: debug\n  log_format: json\n"
        "  default_x509_svid_ttl: 1h\n  default_jwt_svid_ttl: 5m\n  ca_ttl: 24h\n  ca_key_type: ec-p384\n"
        "  ca_subject: {country: US, organization: SPIFFE, common_name: ca}\n  ca_mode: delegated\n"
        "  delegated_ca_ttl: 10m\n  jwt_issuer: https://oidc.example.org\n  agent_ttl: 30m\n"
        "signing: {workers: 2, max_batch: 64, max_wait_us: 200, queue_capacity: 4096}\n"
        "key_store: {kind: pkcs11, module_path: /usr/lib/softhsm/libsofthsm2.so, token_label: ca, pin_file: /etc/pin}\n"
        "node_attestors:\n  tpm_devid: {devid_ca_path: [/etc/devid.pem], endorsement_ca_path: /etc/ek.pem}\n"
        "datastore: {sqlite_path: /var/lib/sigil/db}\n"
        "health_checks: {listener_enabled: true, bind_port: 8080, live_path: /live, ready_path: /ready}\n"
        "telemetry: {prometheus: {host: 127.0.0.1, port: 9988}}\n",
        "server: {trust_domain: example.org, ca_ttl: 1d2h3m4s}\nkey_store: {kind: tpm, tcti: \"swtpm:host=127.0.0.1,port=2321\"}\n"}},
      {"agent_config",
       {"agent:\n  trust_domain: example.org\n  server_address: 127.0.0.1\n  insecure_bootstrap: true\n",
        "agent:\n  trust_domain: example.org\n  server_address: sigil.example.org\n  server_port: 8081\n"
        "  socket_path: /tmp/agent.sock\n  data_dir: /var/lib/agent\n  log_level: warn\n  log_format: text\n"
        "  trust_bundle_path: /etc/bundle.pem\n  join_token: abc\n  workload_key_type: rsa-2048\n"
        "health_checks: {listener_enabled: true, bind_address: 0.0.0.0, bind_port: 8082}\n",
        "agent: {trust_domain: example.org, server_address: s, trust_bundle_path: /b.pem}\n"
        "tpm_devid: {tcti: \"device:/dev/tpmrm0\", devid_cert_path: /d.pem, devid_pub_path: /d.pub, devid_priv_path: /d.priv}\n"}},
  };
  for (const auto& [target, texts] : seeds) {
    for (size_t i = 0; i < texts.size(); ++i) Write(target, "seed-" + std::to_string(i), texts[i]);
  }
  const std::string frames = transport::GrpcFrame("hello") + transport::GrpcFrame("") + transport::GrpcFrame(std::string(300, 'x'));
  Write("grpc_frame", "seed-0", "\x07" + frames);
  Write("grpc_frame", "seed-1", "\x01" + transport::GrpcFrame("\n\x0bspiffe://x"));
  Write("grpc_frame", "seed-2", std::string("\x05\x01\x00\x00\x00\x02zz", 8));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];
  TextSeeds();

  const TrustDomain td = *TrustDomain::Parse(fuzz::kTrustDomain);
  const auto ca_key = NewSigner(KeyType::kEcP256);
  const X509Ca ca = Must(X509Ca::NewRoot(td, ca_key, {.now = fuzz::kNow - std::chrono::hours(1)}), "root");
  const X509Ca intermediate = Must(ca.NewIntermediate(NewSigner(KeyType::kEcP384), {.now = fuzz::kNow - std::chrono::hours(1)}), "intermediate");

  // CSRs of every key type Sigil certifies.
  std::vector<Bytes> csrs;
  for (KeyType type : {KeyType::kEcP256, KeyType::kEcP384, KeyType::kRsa2048}) {
    EvpPkeyPtr key = Must(hw::GenerateSoftKey(type), "key");
    csrs.push_back(Must(MakeCsr(key.get(), *SpiffeId::Parse("spiffe://example.org/w")), "csr"));
    Write("csr", "seed-" + std::string(KeyTypeName(type)), csrs.back());
  }

  // Bundles: JWKS with both kinds of authority, and PEM.
  TrustBundle bundle(td);
  bundle.x509.Add(ca.cert());
  bundle.x509.Add(intermediate.cert());
  bundle.jwt.authorities.emplace(std::string(fuzz::kJwtKeyId), JwtAuthority(UpRef(fuzz::JwtSigner()->public_key())));
  bundle.jwt.authorities.emplace("rsa", JwtAuthority(UpRef(NewSigner(KeyType::kRsa2048)->public_key()),
                                                     fuzz::kNow + std::chrono::hours(24)));
  bundle.sequence = 7;
  bundle.refresh_hint = std::chrono::seconds(300);
  bundle.tainted_x509_authorities = {X509AuthorityId(ca.cert())};
  bundle.tainted_jwt_authorities = {"rsa"};
  Write("jwks", "seed-full", Must(TrustBundleToJwks(bundle), "jwks"));
  TrustBundle x509_only(td);
  x509_only.x509.Add(ca.cert());
  Write("jwks", "seed-x509", Must(TrustBundleToJwks(x509_only), "jwks"));
  Write("jwks", "seed-empty", std::string(R"({"keys":[]})"));
  Write("pem_bundle", "seed-two", Must(X509BundleToPem(bundle.x509), "pem"));
  Write("pem_bundle", "seed-one", Must(X509BundleToPem(x509_only.x509), "pem"));

  // JWT-SVIDs: minted whole (mode 0), and as header and claims for the target to sign (mode 1).
  for (const auto& audience : std::vector<std::vector<std::string>>{{"fuzz-audience"}, {"a", "fuzz-audience"}}) {
    JwtSvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
    params.audience = audience;
    params.now = fuzz::kNow;
    const JwtSvid svid = Must(MintJwtSvid(*fuzz::JwtSigner(), fuzz::kJwtKeyId, params), "jwt");
    Write("jwt_svid", "seed-token-" + std::to_string(audience.size()), std::string(1, '\0') + svid.token);
  }
  Write("jwt_svid", "seed-claims-0",
        std::string("\x01") + R"({"alg":"ES256","kid":"fuzz","typ":"JWT"})" + "\n" +
            R"({"sub":"spiffe://example.org/web","aud":"fuzz-audience","exp":1800000300,"iat":1800000000})");
  Write("jwt_svid", "seed-claims-1",
        std::string("\x01") + R"({"alg":"ES256","kid":"fuzz"})" + "\n" +
            R"({"sub":"spiffe://example.org/db","aud":["x","fuzz-audience"],"exp":1800000300.5,"nbf":1799999999})");

  // Agent API messages, one of each body kind that carries something to read.
  {
    flatbuffers::FlatBufferBuilder b;
    std::vector<flatbuffers::Offset<wire::CsrItem>> items;
    for (size_t i = 0; i < csrs.size(); ++i) {
      items.push_back(wire::CreateCsrItem(b, b.CreateString("entry-" + std::to_string(i)), b.CreateVector(csrs[i])));
    }
    Write("wire", "seed-csr-batch", wire::FinishMessage(b, wire::CreateCsrBatchRequest(b, b.CreateVector(items))));
  }
  {
    flatbuffers::FlatBufferBuilder b;
    EvpPkeyPtr key = Must(hw::GenerateSoftKey(KeyType::kEcP256), "key");
    X509SvidParams params(*SpiffeId::Parse("spiffe://example.org/web"));
    params.now = fuzz::kNow;
    const X509SvidDer svid = Must(MintX509SvidDer(intermediate, key.get(), params), "svid");
    std::vector<flatbuffers::Offset<wire::CsrResult>> results{
        wire::CreateCsrResult(b, b.CreateString("entry-0"), wire::BuildOutcome(b, Status::Ok()),
                              wire::BuildCertificates(b, svid.chain_der), UnixSeconds(svid.not_before),
                              UnixSeconds(svid.expires_at)),
        wire::CreateCsrResult(b, b.CreateString("entry-1"), wire::BuildOutcome(b, PermissionDeniedError("not yours")))};
    Write("wire", "seed-csr-results", wire::FinishMessage(b, wire::CreateCsrBatchResponse(b, b.CreateVector(results))));

    flatbuffers::FlatBufferBuilder a;
    auto built = Must(wire::BuildTrustBundle(a, bundle), "bundle");
    auto response = wire::CreateAgentSvidResponse(a, a.CreateString("spiffe://example.org/spire/agent/x"),
                                                  wire::BuildCertificates(a, svid.chain_der), built);
    Write("wire", "seed-agent-svid", wire::FinishMessage(a, response));
  }
  {
    flatbuffers::FlatBufferBuilder b;
    RegistrationEntry entry;
    entry.id = "e1";
    entry.spiffe_id = "spiffe://example.org/web";
    entry.parent_id = "spiffe://example.org/spire/agent/x";
    entry.selectors = {{"unix", "uid:1001"}, {"unix", "gid:10"}};
    entry.x509_svid_ttl = std::chrono::seconds(600);
    entry.dns_names = {"web.example.org"};
    entry.federates_with = {"other.org"};
    entry.revision = 3;
    std::vector<flatbuffers::Offset<wire::Entry>> entries{wire::BuildEntry(b, entry)};
    auto removed = b.CreateVectorOfStrings(std::vector<std::string>{"e0"});
    auto built = Must(wire::BuildTrustBundle(b, bundle), "bundle");
    auto response = wire::CreateEntrySyncResponse(b, 4, false, b.CreateVector(entries), removed, built);
    Write("wire", "seed-entry-sync", wire::FinishMessage(b, response));
  }
  {
    flatbuffers::FlatBufferBuilder b;
    TrustBundle partner = bundle;
    partner.x509.trust_domain = partner.jwt.trust_domain = *TrustDomain::Parse("other.org");
    auto own = Must(wire::BuildTrustBundle(b, bundle), "bundle");
    std::vector<flatbuffers::Offset<wire::TrustBundle>> federated{Must(wire::BuildTrustBundle(b, partner), "bundle")};
    auto response = wire::CreateEntrySyncResponse(b, 5, true, b.CreateVector(std::vector<flatbuffers::Offset<wire::Entry>>{}),
                                                   b.CreateVectorOfStrings(std::vector<std::string>{}), own,
                                                   b.CreateVector(federated));
    Write("wire", "seed-entry-sync-federated", wire::FinishMessage(b, response));
  }
  {
    flatbuffers::FlatBufferBuilder b;
    auto token = wire::CreateJoinTokenAttestation(b, b.CreateString("tok-123"));
    auto request = wire::CreateAttestationRequest(b, wire::AttestationData::JoinTokenAttestation, token.Union(),
                                                  b.CreateVector(csrs.front()));
    Write("wire", "seed-attest", wire::FinishMessage(b, request));
  }
  {
    flatbuffers::FlatBufferBuilder b;
    std::vector<std::string> audience{"a", "b"};
    auto request = wire::CreateJwtSvidRequest(b, b.CreateString("e1"), b.CreateVectorOfStrings(audience));
    Write("wire", "seed-jwt-request", wire::FinishMessage(b, request));
    flatbuffers::FlatBufferBuilder r;
    auto response = wire::CreateJwtSvidResponse(r, wire::BuildOutcome(r, Status::Ok()), r.CreateString("a.b.c"),
                                                std::numeric_limits<int64_t>::max());
    Write("wire", "seed-jwt-response", wire::FinishMessage(r, response));
  }
  Write("wire", "seed-outcome", wire::OutcomeMessage(InvalidArgumentError("bad")));
  std::printf("wrote seeds under %s\n", root.c_str());
  return 0;
}
