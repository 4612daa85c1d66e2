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
//
// A batch file (--batch) is globus-cli's `globus transfer --batch` input:
// one item per line, words split as a POSIX shell splits them ('single',
// "double" quotes and backslashes; '#' at the start of a word begins a
// comment), the words being SOURCE_PATH DEST_PATH and, anywhere on the line,
// --recursive (or -r) or --no-recursive; "--" ends the options, for a path
// that starts with '-'. Blank and comment lines are skipped:
//
//   # SOURCE DEST [--recursive]
//   /~/projects /~/backup/projects --recursive
//   "/~/my notes.txt" /~/backup/notes.txt
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

// Parses the text of a batch file (see above); errors are
// "<origin>:<line>: ...".
absl::StatusOr<std::vector<TransferItem>> ParseBatchFile(absl::string_view text,
                                                         absl::string_view origin);

// One filter rule of --include / --exclude, in command-line order.
struct FilterRuleArg {
  bool include = false;
  std::string glob;
};

struct TransferSpec {
  std::string source_endpoint_id;
  std::string destination_endpoint_id;
  std::vector<TransferItem> items;
  std::string label;       // Empty: none.
  std::string sync_level;  // Empty: none.
  bool verify_checksum = false;
  bool encrypt_data = false;
  bool preserve_timestamp = false;
  bool delete_destination_extra = false;
  bool skip_source_errors = false;
  bool fail_on_quota_errors = false;
  std::string recursive_symlinks;  // Empty: none (the provider's default, ignore).
  std::vector<FilterRuleArg> filter_rules;
};

// The JSON body the transfer provider takes (see its input schema).
// INVALID_ARGUMENT naming the field when a string is not valid UTF-8, which
// JSON cannot carry.
absl::StatusOr<std::string> TransferBodyJson(const TransferSpec& spec);

}  // namespace timer::cli
