// Mutual TLS with X509-SVIDs: curl and Sigil's own client presenting good, missing, foreign
// and expired certificates, the three authorisers, and a trust bundle rotated while serving.
#include <gtest/gtest.h>

#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "transport/event_loop.h"
#include "transport/http2_client.h"
#include "transport/http2_server.h"
#include "transport/peer_auth.h"
#include "transport/tls.h"

namespace sigil::transport {
namespace {

using sigil::testing::RunProcess;
using sigil::testing::SvidOptions;
using sigil::testing::TempDir;
using sigil::testing::TestCa;
using sigil::testing::TestCert;
using sigil::testing::WriteFile;

std::shared_ptr<const X509Bundle> BundleOf(const TestCa& ca, const std::string& td) {
  auto b = std::make_shared<X509Bundle>(*TrustDomain::Parse(td));
  b->Add(ca.cert());
  return b;
}

std::shared_ptr<const TlsCredentials> CredsOf(const TestCert& cert) {
  auto c = TlsCredentials::FromPem(cert.CertPem(), cert.KeyPem());
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

class MtlsTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }
  void TearDown() override {
    loop_.loop().Invoke([&] { server_.reset(); });
    loop_.Stop();
  }

  // An HTTP/2 server that requires client SVIDs of example.org and passes `authorize`.
  void Serve(Authorizer authorize) {
    bundle_ = std::make_shared<TrustBundleSource>(BundleOf(ca_, "example.org"));
    authorize_ = authorize;
    auto ctx = TlsContext::CreateServer(TlsOptions{.credentials = CredsOf(server_svid_),
                                                   .peer_bundle = bundle_,
                                                   .authorize = std::move(authorize)});
    ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
    server_tls_ = std::make_shared<TlsContextSource>(*ctx);
    port_ = loop_.loop().Invoke([&] {
      server_ = std::make_unique<Http2Server>(
          &loop_.loop(), Http2ServerOptions{}, [](std::shared_ptr<Http2ServerStream> s) {
            s->Respond(200, {});
            s->Write(s->peer().spiffe_id ? s->peer().spiffe_id->str() : "anonymous");
            s->End();
          });
      EXPECT_TRUE(server_->ListenTcp(TcpListenerOptions{}, server_tls_).ok());
      return server_->tcp_port();
    });
    WriteFile(dir_ / "ca.pem", ca_.CertPem());
  }

  // curl with `client` (or none); returns its stdout, or "refused" when it failed.
  std::string Curl(const TestCert* client) {
    std::vector<std::string> argv = {
        "curl", "-sS", "--http2", "--cacert", (dir_ / "ca.pem").string(), "--resolve",
        "localhost:" + std::to_string(port_) + ":127.0.0.1"};
    if (client) {
      std::string name = "client" + std::to_string(++files_);
      WriteFile(dir_ / (name + ".pem"), client->CertPem());
      WriteFile(dir_ / (name + ".key"), client->KeyPem());
      argv.insert(argv.end(), {"--cert", (dir_ / (name + ".pem")).string(), "--key",
                               (dir_ / (name + ".key")).string()});
    }
    argv.push_back("https://localhost:" + std::to_string(port_) + "/");
    auto out = RunProcess(argv);
    EXPECT_TRUE(out.ok());
    return out->exit_code == 0 ? out->out : "refused";
  }

  std::string LastServerError() {
    return loop_.loop().Invoke([&] {
      const auto& errs = server_->stats().recent_errors;
      return errs.empty() ? std::string() : errs.back();
    });
  }

  // One GET through Sigil's own HTTP/2 client; the server's SPIFFE ID goes to `server_id`.
  Result<std::string> Fetch(std::shared_ptr<const TlsContext> tls, std::string* server_id) {
    LoopThread client_loop;
    client_loop.Start();
    std::promise<Result<std::string>> done;
    std::shared_ptr<Http2Client> client;
    std::shared_ptr<Http2ClientStream> stream;
    auto body = std::make_shared<std::string>();
    client_loop.loop().Invoke([&] {
      client = Http2Client::Connect(&client_loop.loop(), Endpoint::Tcp("127.0.0.1", port_), tls);
      stream = client->Submit(
          "GET", "/", {}, "",
          Http2ResponseHandler{.on_data = [body](std::string_view d) { body->append(d); },
                               .on_close = [&, body](const Status& st, const Headers&) {
                                 if (st.ok()) {
                                   done.set_value(*body);
                                 } else {
                                   done.set_value(st);
                                 }
                               }});
    });
    Result<std::string> r = done.get_future().get();
    client_loop.loop().Invoke([&] {
      if (client->peer().spiffe_id) *server_id = client->peer().spiffe_id->str();
      tls_version_ = client->peer().tls_version;
      stream.reset();
      client.reset();
    });
    client_loop.Stop();
    return r;
  }

  std::string tls_version_;
  TempDir dir_;
  TestCa ca_{"example.org"};
  TestCert server_svid_ = ca_.IssueSvid("spiffe://example.org/server");
  std::shared_ptr<TrustBundleSource> bundle_;
  std::shared_ptr<TlsContextSource> server_tls_;
  Authorizer authorize_;
  LoopThread loop_;
  std::unique_ptr<Http2Server> server_;
  int port_ = 0;
  int files_ = 0;
};

TEST_F(MtlsTest, AMemberOfTheTrustDomainGetsInAndItsIdReachesTheHandler) {
  Serve(AuthorizeMemberOf(*TrustDomain::Parse("example.org")));
  TestCert client = ca_.IssueSvid("spiffe://example.org/workload/a");
  EXPECT_EQ(Curl(&client), "spiffe://example.org/workload/a");
}

TEST_F(MtlsTest, AClientWithoutACertificateIsRefused) {
  Serve(AuthorizeAny());
  EXPECT_EQ(Curl(nullptr), "refused");
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return !LastServerError().empty(); }));
  EXPECT_NE(LastServerError().find("certificate"), std::string::npos) << LastServerError();
}

TEST_F(MtlsTest, ACertificateFromAnotherTrustDomainIsRefused) {
  Serve(AuthorizeAny());
  TestCa other("other.org");
  TestCert foreign = other.IssueSvid("spiffe://other.org/workload");
  EXPECT_EQ(Curl(&foreign), "refused");
  EXPECT_TRUE(sigil::testing::WaitUntil([&] { return !LastServerError().empty(); }));
  EXPECT_NE(LastServerError().find("not in trust domain example.org"), std::string::npos)
      << LastServerError();
  // The same CA key material in disguise: signed by another CA but claiming example.org.
  TestCert impostor = other.IssueSvid("spiffe://example.org/workload");
  EXPECT_EQ(Curl(&impostor), "refused");
  EXPECT_TRUE(sigil::testing::WaitUntil(
      [&] { return LastServerError().find("does not verify") != std::string::npos; }))
      << LastServerError();
}

TEST_F(MtlsTest, AnExpiredSvidIsRefused) {
  Serve(AuthorizeAny());
  TestCert expired = ca_.Issue(SvidOptions{.uris = {"spiffe://example.org/old"},
                                           .not_before = std::chrono::hours(-2),
                                           .not_after = std::chrono::hours(-1)});
  EXPECT_EQ(Curl(&expired), "refused");
  EXPECT_TRUE(sigil::testing::WaitUntil(
      [&] { return LastServerError().find("expired") != std::string::npos; }))
      << LastServerError();
}

TEST_F(MtlsTest, LeavesThatAreNotValidSvidsAreRefused) {
  Serve(AuthorizeAny());
  TestCert two_uris = ca_.Issue(
      SvidOptions{.uris = {"spiffe://example.org/a", "spiffe://example.org/b"}});
  EXPECT_EQ(Curl(&two_uris), "refused");
  TestCert not_spiffe = ca_.Issue(SvidOptions{.uris = {"https://example.org/a"}});
  EXPECT_EQ(Curl(&not_spiffe), "refused");
  TestCert ca_leaf = ca_.Issue(SvidOptions{.uris = {"spiffe://example.org/ca"}, .is_ca = true});
  EXPECT_EQ(Curl(&ca_leaf), "refused");
}

TEST_F(MtlsTest, OneExactIdAndASetOfIdsAuthorise) {
  Serve(AuthorizeId(*SpiffeId::Parse("spiffe://example.org/agent")));
  TestCert agent = ca_.IssueSvid("spiffe://example.org/agent");
  TestCert other = ca_.IssueSvid("spiffe://example.org/other");
  EXPECT_EQ(Curl(&agent), "spiffe://example.org/agent");
  EXPECT_EQ(Curl(&other), "refused");
  EXPECT_TRUE(sigil::testing::WaitUntil(
      [&] { return LastServerError().find("is not spiffe://example.org/agent") !=
                   std::string::npos; }))
      << LastServerError();

  Authorizer set = AuthorizeOneOf({*SpiffeId::Parse("spiffe://example.org/a"),
                                   *SpiffeId::Parse("spiffe://example.org/b")});
  EXPECT_TRUE(set(*SpiffeId::Parse("spiffe://example.org/b")).ok());
  EXPECT_EQ(set(*SpiffeId::Parse("spiffe://example.org/c")).code(), Code::kPermissionDenied);
}

TEST_F(MtlsTest, ARotatedBundleTakesEffectWithoutARestart) {
  Serve(AuthorizeAny());
  TestCa next_ca("example.org");
  TestCert old_client = ca_.IssueSvid("spiffe://example.org/w");
  TestCert new_client = next_ca.IssueSvid("spiffe://example.org/w");
  EXPECT_EQ(Curl(&old_client), "spiffe://example.org/w");
  EXPECT_EQ(Curl(&new_client), "refused");

  bundle_->Set(BundleOf(next_ca, "example.org"));
  EXPECT_EQ(Curl(&new_client), "spiffe://example.org/w");
  EXPECT_EQ(Curl(&old_client), "refused");
  EXPECT_EQ(loop_.loop().Invoke([&] { return server_->stats().accepted; }), 4u);
}

TEST_F(MtlsTest, SigilsClientAuthenticatesTheServerAndPresentsItsOwnSvid) {
  Serve(AuthorizeMemberOf(*TrustDomain::Parse("example.org")));
  auto client_bundle = std::make_shared<TrustBundleSource>(BundleOf(ca_, "example.org"));
  auto good = TlsContext::CreateClient(
      TlsOptions{.credentials = CredsOf(ca_.IssueSvid("spiffe://example.org/agent")),
                 .peer_bundle = client_bundle,
                 .authorize = AuthorizeId(*SpiffeId::Parse("spiffe://example.org/server"))});
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  auto wrong_server = TlsContext::CreateClient(
      TlsOptions{.credentials = CredsOf(ca_.IssueSvid("spiffe://example.org/agent")),
                 .peer_bundle = client_bundle,
                 .authorize = AuthorizeId(*SpiffeId::Parse("spiffe://example.org/elsewhere"))});
  ASSERT_TRUE(wrong_server.ok());

  std::string server_id;
  auto ok = Fetch(*good, &server_id);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, "spiffe://example.org/agent");
  EXPECT_EQ(server_id, "spiffe://example.org/server");
  EXPECT_EQ(tls_version_, "TLSv1.3");

  auto refused = Fetch(*wrong_server, &server_id);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("is not spiffe://example.org/elsewhere"),
            std::string::npos)
      << refused.status().ToString();
}

TEST_F(MtlsTest, TheServersOwnSvidRotatesForNewConnections) {
  Serve(AuthorizeAny());
  auto client = TlsContext::CreateClient(
      TlsOptions{.credentials = CredsOf(ca_.IssueSvid("spiffe://example.org/agent")),
                 .peer_bundle = std::make_shared<TrustBundleSource>(BundleOf(ca_, "example.org")),
                 .authorize = AuthorizeMemberOf(*TrustDomain::Parse("example.org"))});
  ASSERT_TRUE(client.ok());
  std::string server_id;
  ASSERT_TRUE(Fetch(*client, &server_id).ok());
  EXPECT_EQ(server_id, "spiffe://example.org/server");

  auto rotated = TlsContext::CreateServer(
      TlsOptions{.credentials = CredsOf(ca_.IssueSvid("spiffe://example.org/server-next")),
                 .peer_bundle = bundle_,
                 .authorize = authorize_});
  ASSERT_TRUE(rotated.ok());
  server_tls_->Set(*rotated);
  ASSERT_TRUE(Fetch(*client, &server_id).ok());
  EXPECT_EQ(server_id, "spiffe://example.org/server-next");
}

}  // namespace
}  // namespace sigil::transport
