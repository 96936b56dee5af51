#include "core/hcl.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sigil {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentifierChar(char c) { return IsLetter(c) || IsDigit(c) || c == '-' || c == '.'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// The offset of the first byte that is NUL or not part of well-formed UTF-8, or npos. NUL is
// refused because no config value may hold one and the parser reads it as the end of input.
size_t FirstBadByte(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0) return i;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t more = 0;
    uint32_t code = 0;
    if ((c & 0xE0) == 0xC0) {
      more = 1, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      more = 2, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      more = 3, code = c & 0x07;
    } else {
      return i;
    }
    if (i + more >= text.size()) return i;
    for (size_t k = 1; k <= more; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3F);
    }
    const uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < smallest[more] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += more + 1;
  }
  return std::string_view::npos;
}

void AppendUtf8(uint32_t code, std::string& out) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// A scalar tagged as YAML tags it: "!" when it was quoted, "?" when it was plain.
YAML::Node Scalar(const std::string& text, bool quoted) {
  YAML::Node node(text);
  node.SetTag(quoted ? "!" : "?");
  return node;
}

// Where a parsed value goes: a member of a mapping, or the next item of a sequence. A
// container is attached before it is filled, because yaml-cpp moves an attached node's
// memory into its parent's: attaching filled subtrees would copy every node once for each
// level above it.
struct Target {
  YAML::Node* container;
  const std::string* key;  // null for a sequence

  void Attach(const YAML::Node& value) const {
    if (key != nullptr) {
      container->force_insert(*key, value);
    } else {
      container->push_back(value);
    }
  }
};

// The keys already set in one body, so that a repeat is found without searching the
// mapping, and so that blocks of one type with different labels share the type's mapping.
struct KeyIndex;
struct KeySlot {
  enum class Kind { kAttribute, kBlock, kLabels };
  Kind kind;
  int line;
  YAML::Node node;                   // the block's or the labels' mapping
  std::unique_ptr<KeyIndex> labels;  // kLabels: the labels seen under this key
};
struct KeyIndex {
  std::map<std::string, KeySlot, std::less<>> slots;
};

std::string Quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

class Parser {
 public:
  Parser(std::string_view text, std::string_view file) : text_(text), file_(file) {}

  Result<YAML::Node> Document();

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  void Advance() {
    const char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      column_ = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++column_;  // columns count characters, not the bytes of one
    }
  }
  Status ErrorAt(int line, int column, std::string_view what) const {
    return InvalidArgumentError(std::string(file_) + ":" + std::to_string(line) + ":" +
                                std::to_string(column) + ": " + std::string(what));
  }
  Status Error(std::string_view what) const { return ErrorAt(line_, column_, what); }
  std::string Found() const;
  Status Deeper(int levels, int line, int column) const;

  Status SkipSpace();
  Status Body(YAML::Node& map, bool braced, bool object, int open_line);
  Status Item(YAML::Node& map, KeyIndex& index, bool object);
  Status Block(YAML::Node& map, KeyIndex& index, std::vector<std::string> path, int line,
               int column);
  Result<std::string> Key();
  Status Value(const Target& target);
  Status List(const Target& target);
  Status Object(const Target& target);
  Result<std::string> QuotedString();
  Status Escape(std::string& out);
  Result<std::string> Heredoc();
  Result<std::string> Number();

  std::string_view text_;
  std::string_view file_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
  int depth_ = 0;  // containers open around the current position
};

std::string Parser::Found() const {
  if (AtEnd()) return "the end of the file";
  const char c = Peek();
  if (c == '\n' || c == '\r') return "the end of the line";
  if (IsLetter(c)) {
    size_t end = pos_;
    while (end < text_.size() && end - pos_ < 40 && IsIdentifierChar(text_[end])) ++end;
    return "the word " + Quoted(text_.substr(pos_, end - pos_));
  }
  if (c > ' ' && c < 0x7F) return std::string("'") + c + "'";
  if (const auto lead = static_cast<unsigned char>(c); lead >= 0xC0) {
    // The text is UTF-8 by now: the whole character is there.
    const size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return "'" + std::string(text_.substr(pos_, length)) + "'";
  }
  char byte[24];
  std::snprintf(byte, sizeof byte, "the byte 0x%02X", static_cast<unsigned char>(c));
  return byte;
}

Status Parser::Deeper(int levels, int line, int column) const {
  if (depth_ + levels <= kHclMaxDepth) return Status::Ok();
  return ErrorAt(line, column, "nested deeper than " + std::to_string(kHclMaxDepth) + " levels");
}

Result<YAML::Node> Parser::Document() {
  if (text_.size() > kHclMaxBytes) {
    return InvalidArgumentError(std::string(file_) + ": larger than " +
                                std::to_string(kHclMaxBytes >> 20) +
                                " MiB, too large for a config file");
  }
  if (const size_t bad = FirstBadByte(text_); bad != std::string_view::npos) {
    while (pos_ < bad) Advance();
    return Error(text_[bad] == '\0' ? "a NUL byte" : "not UTF-8 text");
  }
  if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // the byte order mark some editors write
  YAML::Node root(YAML::NodeType::Map);
  SIGIL_RETURN_IF_ERROR(Body(root, /*braced=*/false, /*object=*/false, 1));
  return root;
}

Status Parser::SkipSpace() {
  for (;;) {
    const char c = Peek();
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      Advance();
    } else if (c == '#' || (c == '/' && Peek(1) == '/')) {
      while (!AtEnd() && Peek() != '\n') Advance();
    } else if (c == '/' && Peek(1) == '*') {
      const size_t end = text_.find("*/", pos_ + 2);
      if (end == std::string_view::npos) return Error("comment '/*' is never closed by '*/'");
      while (pos_ < end + 2) Advance();
    } else {
      return Status::Ok();
    }
  }
}

// The items of the document (braced false: up to the end of the file), of a block or of an
// object value (object true: "key : value" is also allowed, as in JSON), up to its '}'.
Status Parser::Body(YAML::Node& map, bool braced, bool object, int open_line) {
  KeyIndex index;
  for (;;) {
    SIGIL_RETURN_IF_ERROR(SkipSpace());
    if (AtEnd()) {
      if (!braced) return Status::Ok();
      return Error("expected '}' to close the '{' of line " + std::to_string(open_line));
    }
    if (Peek() == '}') {
      if (!braced) return Error("found '}' with no block open");
      Advance();
      return Status::Ok();
    }
    SIGIL_RETURN_IF_ERROR(Item(map, index, object));
    SIGIL_RETURN_IF_ERROR(SkipSpace());
    if (Peek() == ',') Advance();
  }
}

Result<std::string> Parser::Key() {
  if (Peek() == '"') return QuotedString();
  if (!IsLetter(Peek())) return Error("expected a key, found " + Found());
  const size_t start = pos_;
  while (IsIdentifierChar(Peek())) Advance();
  return std::string(text_.substr(start, pos_ - start));
}

// `key = value`, `key { ... }` or `key "label" ... { ... }`.
Status Parser::Item(YAML::Node& map, KeyIndex& index, bool object) {
  const int line = line_, column = column_;
  std::vector<std::string> path;
  SIGIL_ASSIGN_OR_RETURN(std::string key, Key());
  path.push_back(std::move(key));
  SIGIL_RETURN_IF_ERROR(SkipSpace());
  while (Peek() == '"') {
    SIGIL_RETURN_IF_ERROR(Deeper(static_cast<int>(path.size()) + 1, line_, column_));
    SIGIL_ASSIGN_OR_RETURN(std::string label, QuotedString());
    path.push_back(std::move(label));
    SIGIL_RETURN_IF_ERROR(SkipSpace());
  }
  if (Peek() == '{') return Block(map, index, std::move(path), line, column);
  if (path.size() > 1) return Error("expected '{' after the labels of block " + Quoted(path[0]));
  if (Peek() != '=' && !(object && Peek() == ':')) {
    return Error("expected '=' or '{' after " + Quoted(path[0]));
  }
  Advance();
  const auto [slot, added] =
      index.slots.try_emplace(path[0], KeySlot{KeySlot::Kind::kAttribute, line, {}, {}});
  if (!added) {
    return ErrorAt(
        line, column,
        Quoted(path[0]) + " is set twice: first at line " + std::to_string(slot->second.line));
  }
  SIGIL_RETURN_IF_ERROR(SkipSpace());
  return Value(Target{&map, &slot->first});
}

// `path` is the block's type and then its labels, each a level of mappings.
Status Parser::Block(YAML::Node& map, KeyIndex& index, std::vector<std::string> path, int line,
                     int column) {
  SIGIL_RETURN_IF_ERROR(Deeper(static_cast<int>(path.size()), line, column));
  const int open_line = line_;
  YAML::Node* parent = &map;
  KeyIndex* level = &index;
  std::string name;
  for (size_t i = 0; i < path.size(); ++i) {
    const bool last = i + 1 == path.size();
    name += i == 0 ? path[i] : " " + Quoted(path[i]);
    auto slot = level->slots.find(path[i]);
    if (slot == level->slots.end()) {
      YAML::Node node(YAML::NodeType::Map);
      parent->force_insert(path[i], node);
      KeySlot added{last ? KeySlot::Kind::kBlock : KeySlot::Kind::kLabels, line, node,
                    last ? nullptr : std::make_unique<KeyIndex>()};
      slot = level->slots.emplace(path[i], std::move(added)).first;
    } else if (last || slot->second.kind != KeySlot::Kind::kLabels) {
      const bool block = slot->second.kind != KeySlot::Kind::kAttribute;
      return ErrorAt(line, column,
                     (block ? "block " + name : Quoted(name)) +
                         " is defined twice: first at line " + std::to_string(slot->second.line));
    }
    parent = &slot->second.node;
    level = slot->second.labels.get();
  }
  Advance();  // '{'
  depth_ += static_cast<int>(path.size());
  SIGIL_RETURN_IF_ERROR(Body(*parent, /*braced=*/true, /*object=*/false, open_line));
  depth_ -= static_cast<int>(path.size());
  return Status::Ok();
}

Status Parser::Value(const Target& target) {
  const char c = Peek();
  if (c == '"') {
    SIGIL_ASSIGN_OR_RETURN(std::string text, QuotedString());
    target.Attach(Scalar(text, true));
  } else if (c == '<' && Peek(1) == '<') {
    SIGIL_ASSIGN_OR_RETURN(std::string text, Heredoc());
    target.Attach(Scalar(text, true));
  } else if (c == '[') {
    return List(target);
  } else if (c == '{') {
    return Object(target);
  } else if (c == '-' || IsDigit(c)) {
    SIGIL_ASSIGN_OR_RETURN(std::string literal, Number());
    target.Attach(Scalar(literal, false));
  } else if (IsLetter(c)) {
    const int line = line_, column = column_;
    const size_t start = pos_;
    while (IsIdentifierChar(Peek())) Advance();
    const std::string_view word = text_.substr(start, pos_ - start);
    if (word == "true" || word == "false") {
      target.Attach(Scalar(std::string(word), false));
    } else if (word == "null") {
      target.Attach(YAML::Node(YAML::NodeType::Null));
    } else {
      return ErrorAt(line, column,
                     "expected a value, found the word " + Quoted(word.substr(0, 40)) +
                         ": text is written in quotes");
    }
  } else {
    return Error("expected a value (a string, number, true, false, null, list or object), found " +
                 Found());
  }
  return Status::Ok();
}

Status Parser::List(const Target& target) {
  SIGIL_RETURN_IF_ERROR(Deeper(1, line_, column_));
  const int open_line = line_;
  Advance();  // '['
  YAML::Node list(YAML::NodeType::Sequence);
  target.Attach(list);
  ++depth_;
  for (;;) {
    SIGIL_RETURN_IF_ERROR(SkipSpace());
    if (Peek() == ']') break;
    if (AtEnd()) return Error("expected ']' to close the '[' of line " + std::to_string(open_line));
    SIGIL_RETURN_IF_ERROR(Value(Target{&list, nullptr}));
    SIGIL_RETURN_IF_ERROR(SkipSpace());
    if (Peek() == ']') break;
    if (Peek() != ',') return Error("expected ',' or ']' after a list item, found " + Found());
    Advance();
  }
  Advance();  // ']'
  --depth_;
  return Status::Ok();
}

Status Parser::Object(const Target& target) {
  SIGIL_RETURN_IF_ERROR(Deeper(1, line_, column_));
  const int open_line = line_;
  Advance();  // '{'
  YAML::Node object(YAML::NodeType::Map);
  target.Attach(object);
  ++depth_;
  SIGIL_RETURN_IF_ERROR(Body(object, /*braced=*/true, /*object=*/true, open_line));
  --depth_;
  return Status::Ok();
}

Result<std::string> Parser::QuotedString() {
  const int line = line_, column = column_;
  Advance();  // '"'
  std::string out;
  // Inside "${...}" HCL 1 takes quotes and newlines as they are and unescapes nothing; the
  // text is kept for the caller, who has expanded it already or means it literally.
  int braces = 0;
  for (;;) {
    if (AtEnd()) return ErrorAt(line, column, "string is never closed: expected '\"'");
    const char c = Peek();
    if (braces > 0) {
      braces += c == '{' ? 1 : c == '}' ? -1 : 0;
    } else if (c == '"') {
      break;
    } else if (c == '\n') {
      return Error("expected '\"' to end the string begun at column " + std::to_string(column));
    } else if (c == '\\') {
      SIGIL_RETURN_IF_ERROR(Escape(out));
      continue;
    } else if (c == '$' && Peek(1) == '{') {
      out += c;
      Advance();
      braces = 1;
    }
    out += Peek();
    Advance();
  }
  Advance();  // '"'
  return out;
}

Status Parser::Escape(std::string& out) {
  const int line = line_, column = column_;
  Advance();  // '\'
  const char c = Peek();
  static constexpr std::string_view kEscaped = "nrt\"\\", kMeant = "\n\r\t\"\\";
  if (const size_t simple = kEscaped.find(c); simple != std::string_view::npos) {
    out += kMeant[simple];
    Advance();
    return Status::Ok();
  }
  if (c != 'u' && c != 'U') {
    const std::string escape =
        c > ' ' && c < 0x7F ? "'\\" + std::string(1, c) + "'" : "'\\' before " + Found();
    return ErrorAt(
        line, column,
        "unknown escape " + escape + ": write \\n, \\r, \\t, \\\", \\\\, \\uXXXX or \\UXXXXXXXX");
  }
  Advance();
  const int digits = c == 'u' ? 4 : 8;
  uint32_t code = 0;
  for (int i = 0; i < digits; ++i) {
    const char h = Peek();
    if (!IsHexDigit(h)) {
      return ErrorAt(line, column,
                     "expected " + std::to_string(digits) + " hexadecimal digits after '\\" +
                         std::string(1, c) + "'");
    }
    code = code * 16 + static_cast<uint32_t>(IsDigit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
    Advance();
  }
  if (code == 0 || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
    return ErrorAt(
        line, column,
        "escape '\\" + std::string(1, c) + "' names no character a config value may hold");
  }
  AppendUtf8(code, out);
  return Status::Ok();
}

// <<EOF or <<-EOF, then lines up to one holding only the marker (indentation allowed).
Result<std::string> Parser::Heredoc() {
  const int line = line_, column = column_;
  Advance();
  Advance();  // "<<"
  const bool indented = Peek() == '-';
  if (indented) Advance();
  const size_t start = pos_;
  while (IsLetter(Peek()) || IsDigit(Peek())) Advance();
  const std::string_view marker = text_.substr(start, pos_ - start);
  if (marker.empty()) return Error("expected a marker such as EOF after '<<'");
  if (Peek() == '\r') Advance();
  if (Peek() != '\n')
    return Error("expected the end of the line after the heredoc marker " + std::string(marker));
  Advance();
  std::vector<std::string_view> lines;
  std::string_view prefix;
  for (;;) {
    if (AtEnd()) {
      return ErrorAt(
          line, column,
          "heredoc is never closed: expected a line holding only " + std::string(marker));
    }
    const size_t end = std::min(text_.find('\n', pos_), text_.size());
    const std::string_view text_line = text_.substr(pos_, end - pos_);
    const size_t indent = std::min(text_line.find_first_not_of(" \t"), text_line.size());
    std::string_view rest = text_line.substr(indent);
    while (!rest.empty() && rest.back() == '\r') rest.remove_suffix(1);
    while (pos_ < end) Advance();
    if (rest == marker) {
      prefix = text_line.substr(0, indent);
      break;
    }
    if (!AtEnd()) Advance();  // '\n'
    lines.push_back(text_line);
  }
  // As HCL 1: <<- strips the closing marker's indentation only when every line has it.
  bool strip = indented;
  for (const std::string_view l : lines) strip = strip && l.substr(0, prefix.size()) == prefix;
  std::string out;
  for (const std::string_view l : lines) {
    out += strip ? l.substr(prefix.size()) : l;
    out += '\n';
  }
  return out;
}

// The literal text of a decimal number: -?digits(.digits)?([eE][+-]?digits)?
Result<std::string> Parser::Number() {
  const size_t start = pos_;
  if (Peek() == '-') Advance();
  if (!IsDigit(Peek())) return Error("expected a digit after '-'");
  if (Peek() == '0' && (IsDigit(Peek(1)) || Peek(1) == 'x' || Peek(1) == 'X')) {
    return Error(
        "a number may not start with 0: HCL reads 010 as octal and 0x10 as hexadecimal; write it "
        "in decimal");
  }
  while (IsDigit(Peek())) Advance();
  if (Peek() == '.' && IsDigit(Peek(1))) {
    Advance();
    while (IsDigit(Peek())) Advance();
  }
  if ((Peek() == 'e' || Peek() == 'E') &&
      (IsDigit(Peek(1)) || ((Peek(1) == '+' || Peek(1) == '-') && IsDigit(Peek(2))))) {
    Advance();
    if (!IsDigit(Peek())) Advance();
    while (IsDigit(Peek())) Advance();
  }
  const std::string literal(text_.substr(start, pos_ - start));
  if (IsIdentifierChar(Peek())) {
    return Error("expected the end of the number " + literal + ", found " + Found() +
                 ": a value such as 1h is written in quotes");
  }
  return literal;
}

}  // namespace

Result<YAML::Node> ParseHcl(std::string_view text, std::string_view file_name) {
  return Parser(text, file_name).Document();
}

}  // namespace sigil
