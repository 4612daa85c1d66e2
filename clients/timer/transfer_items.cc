#include "transfer_items.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "printable.h"

namespace timer::cli {
namespace {

absl::string_view Trim(absl::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == absl::string_view::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// nlohmann::json's own check, the one dump() would fail on.
bool IsValidUtf8(absl::string_view s) {
  try {
    (void)nlohmann::json(std::string(s)).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

absl::Status CheckUtf8(absl::string_view value, absl::string_view field) {
  if (IsValidUtf8(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
}

}  // namespace

absl::StatusOr<bool> ParseBoolArg(absl::string_view text, absl::string_view where) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "yes" || lower == "1") return true;
  if (lower == "false" || lower == "no" || lower == "0") return false;
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": \"", Echo(text), "\" is not true or false"));
}

absl::StatusOr<std::vector<TransferItem>> ParseItemsFile(absl::string_view text,
                                                         absl::string_view origin) {
  std::vector<TransferItem> items;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    const absl::string_view trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(trimmed, ',');
    // One trailing comma ("a, b, true,") is tolerated, as spreadsheets write it.
    if (fields.size() > 1 && fields.back().empty()) fields.pop_back();
    const std::string where = absl::StrCat(origin, ":", n);
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected SOURCE, DESTINATION, RECURSIVE"));
    }
    absl::StatusOr<bool> recursive = ParseBoolArg(Trim(fields[2]), where);
    if (!recursive.ok()) return recursive.status();
    // A file written in another encoding (Latin-1, say) would otherwise
    // only fail when the body is serialized, as an uncaught exception.
    if (absl::Status s = CheckUtf8(trimmed, where); !s.ok()) return s;
    items.push_back(
        {std::string(Trim(fields[0])), std::string(Trim(fields[1])), *recursive});
  }
  return items;
}

namespace {

// Splits one line into words as a POSIX shell does (quotes, backslashes, a
// '#' comment at the start of a word). INVALID_ARGUMENT on an open quote.
absl::StatusOr<std::vector<std::string>> SplitWords(absl::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '#' && !in_word) {
      break;
    } else if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      if (end == absl::string_view::npos)
        return absl::InvalidArgumentError("no closing '");
      absl::StrAppend(&word, line.substr(i + 1, end - i - 1));
      in_word = true;
      i = end;
    } else if (c == '"') {
      in_word = true;
      for (++i;; ++i) {
        if (i >= line.size()) return absl::InvalidArgumentError("no closing \"");
        if (line[i] == '"') break;
        if (line[i] == '\\' && i + 1 < line.size() &&
            absl::string_view("\"\\$`").find(line[i + 1]) != absl::string_view::npos) {
          ++i;
        }
        word.push_back(line[i]);
      }
    } else if (c == '\\') {
      if (i + 1 < line.size()) word.push_back(line[++i]);
      in_word = true;
    } else {
      word.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace

absl::StatusOr<std::vector<TransferItem>> ParseBatchFile(absl::string_view text,
                                                         absl::string_view origin) {
  std::vector<TransferItem> items;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++n;
    const std::string where = absl::StrCat(origin, ":", n);
    absl::StatusOr<std::vector<std::string>> words = SplitWords(line);
    if (!words.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", words.status().message()));
    if (words->empty()) continue;
    TransferItem item;
    std::vector<std::string> paths;
    bool options_end = false;
    for (const std::string& w : *words) {
      if (options_end || w.empty() || w[0] != '-' || w == "-") {
        paths.push_back(w);
      } else if (w == "--") {
        options_end = true;
      } else if (w == "--recursive" || w == "-r") {
        item.recursive = true;
      } else if (w == "--no-recursive") {
        item.recursive = false;
      } else if (w.rfind("--external-checksum", 0) == 0 ||
                 w.rfind("--checksum-algorithm", 0) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": ", Echo(w),
            " is not supported (--verify-checksum compares SHA-256 of source and copy)"));
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": unknown option ", Echo(w),
            " (a line is SOURCE_PATH DEST_PATH [--recursive]; \"--\" before a path "
            "that starts with '-')"));
      }
    }
    if (paths.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected SOURCE_PATH DEST_PATH [--recursive], got ",
                       paths.size(), paths.size() == 1 ? " path" : " paths"));
    }
    if (absl::Status s = CheckUtf8(absl::StrCat(paths[0], paths[1]), where); !s.ok())
      return s;
    item.source_path = std::move(paths[0]);
    item.destination_path = std::move(paths[1]);
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<std::string> TransferBodyJson(const TransferSpec& spec) {
  // dump() throws on invalid UTF-8; say which field instead.
  for (const auto& [value, field] :
       {std::pair{&spec.source_endpoint_id, "source_endpoint_id"},
        {&spec.destination_endpoint_id, "destination_endpoint_id"},
        {&spec.label, "label"},
        {&spec.sync_level, "sync_level"},
        {&spec.recursive_symlinks, "recursive_symlinks"}}) {
    if (absl::Status s = CheckUtf8(*value, field); !s.ok()) return s;
  }
  for (size_t i = 0; i < spec.items.size(); ++i) {
    const std::string prefix = absl::StrCat("transfer_items[", i, "].");
    const TransferItem& item = spec.items[i];
    if (absl::Status s = CheckUtf8(item.source_path, absl::StrCat(prefix, "source_path"));
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            CheckUtf8(item.destination_path, absl::StrCat(prefix, "destination_path"));
        !s.ok()) {
      return s;
    }
  }
  nlohmann::json items = nlohmann::json::array();
  for (const TransferItem& item : spec.items) {
    items.push_back({{"source_path", item.source_path},
                     {"destination_path", item.destination_path},
                     {"recursive", item.recursive}});
  }
  nlohmann::json body = {{"source_endpoint_id", spec.source_endpoint_id},
                         {"destination_endpoint_id", spec.destination_endpoint_id},
                         {"transfer_items", items}};
  if (!spec.label.empty()) body["label"] = spec.label;
  if (!spec.sync_level.empty()) body["sync_level"] = spec.sync_level;
  if (spec.verify_checksum) body["verify_checksum"] = true;
  if (spec.encrypt_data) body["encrypt_data"] = true;
  if (spec.preserve_timestamp) body["preserve_timestamp"] = true;
  if (spec.delete_destination_extra) body["delete_destination_extra"] = true;
  if (spec.skip_source_errors) body["skip_source_errors"] = true;
  if (spec.fail_on_quota_errors) body["fail_on_quota_errors"] = true;
  if (!spec.recursive_symlinks.empty())
    body["recursive_symlinks"] = spec.recursive_symlinks;
  if (!spec.filter_rules.empty()) {
    nlohmann::json rules = nlohmann::json::array();
    for (const FilterRuleArg& r : spec.filter_rules) {
      if (absl::Status s = CheckUtf8(r.glob, r.include ? "--include" : "--exclude");
          !s.ok()) {
        return s;
      }
      // As globus-cli's rules: on files (directories are always entered).
      rules.push_back({{"DATA_TYPE", "filter_rule"},
                       {"method", r.include ? "include" : "exclude"},
                       {"name", r.glob},
                       {"type", "file"}});
    }
    body["filter_rules"] = rules;
  }
  return body.dump();
}

}  // namespace timer::cli
