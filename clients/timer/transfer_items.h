// The transfer provider's body as `timer job transfer` builds it: items from
// --item triples or an --items-file, endpoints, label and options. Pure
// functions over text the user supplied; thread-safe.
//
// An items file holds one item per line as CSV:
//
//   # SOURCE, DESTINATION, RECURSIVE
//   projects/, backup/projects/, true
//   notes.txt, backup/notes.txt, false
//
// Blank lines and lines whose first non-blank character is '#' are skipped;
// spaces, tabs and '\r' around each field are trimmed. Paths must be UTF-8.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timer::cli {

struct TransferItem {
  std::string source_path;
  std::string destination_path;
  bool recursive = false;
};

// "true", "yes", "1", "false", "no", "0", in any case. `where` prefixes the
// INVALID_ARGUMENT error ("--item: ...").
absl::StatusOr<bool> ParseBoolArg(absl::string_view text, absl::string_view where);

// Parses the text of an items file (see above). `origin` names it in errors,
// which end up as "<origin>:<line>: ...".
absl::StatusOr<std::vector<TransferItem>> ParseItemsFile(absl::string_view text,
                                                         absl::string_view origin);

struct TransferSpec {
  std::string source_endpoint_id;
  std::string destination_endpoint_id;
  std::vector<TransferItem> items;
  std::string label;       // Empty: none.
  std::string sync_level;  // Empty: none.
  bool verify_checksum = false;
  bool encrypt_data = false;
  bool preserve_timestamp = false;
};

// The JSON body the transfer provider takes (see its input schema).
// INVALID_ARGUMENT naming the field when a string is not valid UTF-8, which
// JSON cannot carry.
absl::StatusOr<std::string> TransferBodyJson(const TransferSpec& spec);

}  // namespace timer::cli
