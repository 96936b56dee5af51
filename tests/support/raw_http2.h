// A hostile peer's tools: raw connections (Unix, TCP from a chosen loopback address, TLS) that
// send hand-made HTTP/2 frames and read what comes back, with no HTTP/2 library to keep them
// polite. Used by the bad-input and hostile-peer tests.
//
// Thread safety: each RawClient is used by one thread at a time.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sigil::testing {

inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
inline constexpr uint8_t kFrameData = 0, kFrameHeaders = 1, kFrameRstStream = 3, kFrameSettings = 4,
                         kFramePing = 6, kFrameGoaway = 7, kFrameWindowUpdate = 8;
inline constexpr uint8_t kFlagEndStream = 0x1, kFlagAck = 0x1, kFlagEndHeaders = 0x4;
inline constexpr uint16_t kSettingsInitialWindowSize = 0x4;
// POST, http, / from HPACK's static table, and :authority localhost as a literal.
inline constexpr std::string_view kHpackPostRoot = "\x83\x86\x84\x01\x09localhost";

// One HTTP/2 frame: 9-byte header, then the payload.
std::string Http2Frame(uint8_t type, uint8_t flags, uint32_t stream_id, std::string_view payload);
// The client preface and an empty SETTINGS frame.
std::string Http2ClientPreface();
// A POST whose body is still to come (no END_STREAM).
std::string Http2OpenRequest(uint32_t stream_id);
// A header block of the fields in the order given, each a literal without indexing and without
// Huffman coding (pseudo-headers too): any request a peer likes, with no HPACK state to keep.
// Names and values must be shorter than 127 bytes.
std::string Http2Headers(std::initializer_list<std::pair<std::string_view, std::string_view>> fields);
// One entry of a SETTINGS frame's payload.
std::string Http2Setting(uint16_t id, uint32_t value);
// A RST_STREAM frame.
std::string Http2RstStream(uint32_t stream_id, uint32_t error_code);
inline constexpr uint32_t kErrorCancel = 0x8, kErrorEnhanceYourCalm = 0xb;

// A whole frame as received; `payload` points into the bytes it was parsed from.
struct Http2ReceivedFrame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream_id;
  std::string_view payload;
};
// The whole frames `bytes` begins with (a server sends no preface string), up to the first
// incomplete one.
std::vector<Http2ReceivedFrame> Http2Frames(std::string_view bytes);
// The error code of a RST_STREAM or GOAWAY frame; 0 for a short payload.
uint32_t Http2ErrorCode(const Http2ReceivedFrame& frame);
// The last stream a GOAWAY says the server processed; 0 for a short payload.
uint32_t Http2GoawayLastStream(const Http2ReceivedFrame& frame);

// A raw connection, closed on destruction. Connecting failures are recorded as test failures.
class RawClient {
 public:
  static RawClient Unix(const std::string& path);
  // `from` another loopback address (127.0.0.2) makes the connection come from another source.
  static RawClient Tcp(int port, const char* from = nullptr);
  // TCP, then a TLS handshake that trusts any server certificate and offers h2 by ALPN; no
  // client certificate, as an unauthenticated peer. connected() is false when the server
  // closed or refused it.
  static RawClient Tls(int port, const char* from = nullptr);

  RawClient(RawClient&& other) noexcept;
  RawClient& operator=(RawClient&&) = delete;
  ~RawClient();

  bool connected() const { return fd_ >= 0; }

  // Sends all of `bytes`; a test failure when the server closed the connection.
  void Send(std::string_view bytes);
  // As Send, false instead of a failure when the server closed the connection or did not
  // take the bytes within `timeout`.
  bool TrySend(std::string_view bytes, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Reads until the server closes; false if it is still open after `timeout`.
  bool WaitForClose(std::chrono::milliseconds timeout);
  // Reads for `timeout` (or until the server closes) and says whether a frame of `type` for
  // `stream_id` arrived; `error_code`, when given, receives a RST_STREAM's code.
  bool WaitForFrame(uint8_t type, uint32_t stream_id, std::chrono::milliseconds timeout, uint32_t* error_code = nullptr);
  // Reads what arrives for `wait` into received(); false once the server closed.
  bool ReadFor(std::chrono::milliseconds wait);
  const std::string& received() const { return received_; }

 private:
  explicit RawClient(int fd) : fd_(fd) {}
  // Appends what arrives within `wait` to received_; false once the server closed.
  bool ReadSome(std::chrono::milliseconds wait);

  int fd_ = -1;
  SSL_CTX* ssl_context_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string received_;
};

}  // namespace sigil::testing
