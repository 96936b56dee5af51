#include "transport/http2.h"

namespace sigil::transport {
namespace {

nghttp2_nv MakeNv(const std::pair<std::string, std::string>& h) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(h.first.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(h.second.data())),
                    h.first.size(), h.second.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

std::string_view FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::vector<nghttp2_nv> ToNv(const Headers& pseudo, const Headers& headers) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(pseudo.size() + headers.size());
  for (const auto& h : pseudo) nv.push_back(MakeNv(h));
  for (const auto& h : headers) nv.push_back(MakeNv(h));
  return nv;
}

}  // namespace sigil::transport
