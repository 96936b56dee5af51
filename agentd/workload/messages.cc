#include "agentd/workload/messages.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "agentd/workload/workload.pb.h"
#include "transport/grpc.h"

namespace sigil::agentd {

namespace {

using google::protobuf::io::CodedOutputStream;
using google::protobuf::io::StringOutputStream;
using google::protobuf::internal::WireFormatLite;

// A frame with room for the gRPC prefix and `payload_capacity` more.
std::string NewFrame(size_t payload_capacity) {
  std::string frame;
  frame.reserve(transport::kGrpcFramePrefixBytes + payload_capacity);
  frame.resize(transport::kGrpcFramePrefixBytes);
  return frame;
}

// Protobuf leaves map order to chance; streams compare what they sent byte for byte.
FramedMessage SerializeDeterministic(const google::protobuf::Message& message) {
  std::string frame = NewFrame(message.ByteSizeLong());
  {
    StringOutputStream stream(&frame);
    CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return FramedMessage(std::move(frame));
}

// One length-delimited field of a message whose field numbers are below 16 (a one-byte tag), as
// protobuf writes a proto3 string or bytes field: left out when empty.
size_t FieldSize(size_t length) { return length == 0 ? 0 : 1 + WireFormatLite::LengthDelimitedSize(length); }

void WriteField(CodedOutputStream& coded, int number, std::string_view bytes, bool even_empty = false) {
  if (bytes.empty() && !even_empty) return;
  coded.WriteTag(WireFormatLite::MakeTag(number, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
}

std::string_view AsView(const Bytes& bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// The JWT authorities alone: the standard forbids keys of other uses in JWT bundles.
Result<std::string> JwtJwks(const TrustBundle& bundle) {
  TrustBundle jwt_only(bundle.trust_domain());
  jwt_only.jwt = bundle.jwt;
  return TrustBundleToJwks(jwt_only);
}

}  // namespace

Status NoIdentity() { return PermissionDeniedError("no identity issued"); }

FramedMessage::FramedMessage(std::string frame) {
  transport::GrpcSealFrame(frame);
  frame_ = std::make_shared<const std::string>(std::move(frame));
}

std::string_view FramedMessage::payload() const {
  return std::string_view(*frame_).substr(transport::kGrpcFramePrefixBytes);
}

CallerView ViewOf(const SvidCache::Snapshot& snapshot, const SelectorSet& selectors) {
  CallerView view;
  std::vector<const SvidCache::CachedEntry*> matched;
  for (const auto& [id, cached] : *snapshot.entries) {
    if (EntryMatchesWorkload(cached.entry->selector_set(), selectors)) matched.push_back(&cached);
  }
  std::sort(matched.begin(), matched.end(), [](const auto* a, const auto* b) {
    return std::tie(a->entry->spiffe_id, a->entry->id) < std::tie(b->entry->spiffe_id, b->entry->id);
  });
  for (const auto* cached : matched) {
    const RegistrationEntry* entry = cached->entry.get();
    view.entries.push_back(entry);
    if (cached->svid) view.svids.push_back(cached->svid);
    for (const auto& federated : entry->federates_with) {
      auto td = TrustDomain::Parse(federated);
      if (!td.ok()) continue;
      auto it = snapshot.federated_bundles.find(td->name());
      if (it == snapshot.federated_bundles.end()) continue;
      view.federated[td->IdString()] = it->second;
      if (auto der = snapshot.federated_bundle_der.find(td->name()); der != snapshot.federated_bundle_der.end()) {
        view.federated_der[td->IdString()] = der->second;
      }
    }
  }
  return view;
}

Result<std::optional<FramedMessage>> X509SvidResponseFor(const SvidCache::Snapshot& snapshot,
                                                         const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  if (view.svids.empty() || snapshot.bundle == nullptr || snapshot.bundle_der == nullptr) {
    return std::optional<FramedMessage>();
  }
  // Each X509SVID is written field by field straight from the cache's bytes into the frame,
  // rather than through a protobuf object holding a copy of every SVID: a workload of a
  // thousand SVIDs made thousands of small allocations per change that way, and their holes
  // among the cache's own kept the agent's memory at twice the cache's size.
  const std::string_view bundle = *snapshot.bundle_der;
  std::set<std::string_view> hints;
  std::vector<std::string_view> hint_of;  // the hint each element carries: a repeated one is dropped
  std::vector<size_t> element_size;
  size_t total = 0;
  for (const auto& svid : view.svids) {
    const std::string_view hint =
        !svid->hint().empty() && hints.insert(svid->hint()).second ? std::string_view(svid->hint()) : std::string_view();
    hint_of.push_back(hint);
    element_size.push_back(FieldSize(svid->spiffe_id().size()) + FieldSize(svid->chain_der.size()) +
                           FieldSize(svid->key_pkcs8_der.size()) + FieldSize(bundle.size()) + FieldSize(hint.size()));
    total += 1 + WireFormatLite::LengthDelimitedSize(element_size.back());
  }
  // The fields after svids, in field order as protobuf writes them.
  X509SVIDResponse rest;
  for (const auto& [td_id, der] : view.federated_der) (*rest.mutable_federated_bundles())[td_id] = *der;
  std::string frame = NewFrame(total + rest.ByteSizeLong());
  {
    StringOutputStream stream(&frame);
    CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    for (size_t i = 0; i < view.svids.size(); ++i) {
      const WorkloadX509Svid& svid = *view.svids[i];
      coded.WriteTag(WireFormatLite::MakeTag(X509SVIDResponse::kSvidsFieldNumber,
                                             WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
      coded.WriteVarint32(static_cast<uint32_t>(element_size[i]));
      WriteField(coded, X509SVID::kSpiffeIdFieldNumber, svid.spiffe_id());
      WriteField(coded, X509SVID::kX509SvidFieldNumber, AsView(svid.chain_der));
      WriteField(coded, X509SVID::kX509SvidKeyFieldNumber, AsView(svid.key_pkcs8_der));
      WriteField(coded, X509SVID::kBundleFieldNumber, bundle);
      WriteField(coded, X509SVID::kHintFieldNumber, hint_of[i]);
    }
    rest.SerializeToCodedStream(&coded);
  }
  return std::optional<FramedMessage>(FramedMessage(std::move(frame)));
}

Result<std::optional<FramedMessage>> X509BundlesResponseFor(const SvidCache::Snapshot& snapshot,
                                                            const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  if (snapshot.bundle == nullptr || snapshot.bundle_der == nullptr) return std::optional<FramedMessage>();
  X509BundlesResponse response;
  (*response.mutable_bundles())[snapshot.bundle->trust_domain().IdString()] = *snapshot.bundle_der;
  for (const auto& [td_id, der] : view.federated_der) (*response.mutable_bundles())[td_id] = *der;
  return std::optional<FramedMessage>(SerializeDeterministic(response));
}

Result<std::optional<FramedMessage>> JwtBundlesResponseFor(const SvidCache::Snapshot& snapshot,
                                                           const SelectorSet& selectors) {
  CallerView view = ViewOf(snapshot, selectors);
  if (view.entries.empty()) return NoIdentity();
  if (snapshot.bundle == nullptr) return std::optional<FramedMessage>();
  JWTBundlesResponse response;
  SIGIL_ASSIGN_OR_RETURN(std::string own, JwtJwks(*snapshot.bundle));
  (*response.mutable_bundles())[snapshot.bundle->trust_domain().IdString()] = std::move(own);
  for (const auto& [td_id, federated] : view.federated) {
    SIGIL_ASSIGN_OR_RETURN(std::string jwks, JwtJwks(*federated));
    (*response.mutable_bundles())[td_id] = std::move(jwks);
  }
  return std::optional<FramedMessage>(SerializeDeterministic(response));
}

std::string JwtSvidResponse(const std::vector<JwtSvidItem>& svids) {
  JWTSVIDResponse response;
  std::set<std::string> hints;
  for (const JwtSvidItem& item : svids) {
    auto* out = response.add_svids();
    out->set_spiffe_id(item.spiffe_id);
    out->set_svid(item.token);
    if (!item.hint.empty() && hints.insert(item.hint).second) out->set_hint(item.hint);
  }
  return response.SerializeAsString();
}

std::string ValidateJwtSvidResponse(const std::string& spiffe_id, const std::string& claims_struct) {
  // Written field by field, both always (the claims even when empty, as a set message field
  // is): only protobuf's library touches the Struct (see ValidateJwtSvid).
  std::string response;
  {
    StringOutputStream out(&response);
    CodedOutputStream coded(&out);
    WriteField(coded, ValidateJWTSVIDResponse::kSpiffeIdFieldNumber, spiffe_id, true);
    WriteField(coded, ValidateJWTSVIDResponse::kClaimsFieldNumber, claims_struct, true);
  }
  return response;
}

}  // namespace sigil::agentd
