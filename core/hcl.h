// Reading HCL, the language of SPIRE's server.conf and agent.conf, into the YAML::Node tree a
// YAML config document gives, so that an operator's SPIRE files and Sigil's YAML files are
// walked by the same ConfigSection reads. No C++ HCL library is packaged in Debian, so this
// parser is written here. It reads the text it is handed (SPIRE's -expandEnv, replacing
// ${VAR}, is the caller's business and happens before), and it is total: any bytes give a
// tree or an InvalidArgument naming the file, line and column, in time linear in their size.
//
// The tree:
//   key = value                      key: value
//   name { ... }                     name: { ... }
//   type "a" "b" { ... }             type: { a: { b: { ... } } }  (labels are nested keys)
//   "text", <<EOF heredoc            a scalar tagged "!", as YAML tags a quoted scalar
//   3600, -1.5e3, true, false        a scalar of the literal text tagged "?", as YAML tags a
//                                    plain one; "1h" (quoted) and 3600 stay apart by their text
//   null                             a null node, which ConfigSection reads as absent
//   [a, b,]   { a = 1, "b" : 2 }     a sequence, a mapping
// Blocks of one type with different labels share the type's mapping (plugins { NodeAttestor
// "join_token" {} NodeAttestor "tpm_devid" {} }); setting a key twice, or repeating a block
// with the same labels, is an error naming both lines.
//
// Read as HCL 1 reads them (SPIRE's parser): identifiers of letters, digits, '_', '-' and
// '.'; "${...}" kept as literal text, quotes and newlines inside it included; the escapes
// \n \r \t \" \\ \uXXXX \UXXXXXXXX; <<-EOF removes the closing marker's indentation from every
// line when every line has it; items of a body separated by newlines, commas or nothing.
// Refused, each with a message saying what to write instead: labels without quotes, bare
// words as values (a quoted string is meant), numbers with a leading zero or in hexadecimal
// (HCL 1 reads 010 as octal), unquoted durations such as 1h, invalid UTF-8 and NUL bytes.
// Bounded: at most kHclMaxBytes of text and kHclMaxDepth levels of nesting, labels included.
//
// Thread safety: a function of its arguments; call it from any thread.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace sigil {

inline constexpr size_t kHclMaxBytes = size_t{1} << 20;
inline constexpr int kHclMaxDepth = 64;

// The document as a mapping (empty for an empty file). InvalidArgument
// "server.conf:12:5: expected '=' or '{' after \"bind_port\"" otherwise; `file_name` is only
// used in messages.
Result<YAML::Node> ParseHcl(std::string_view text, std::string_view file_name);

}  // namespace sigil
