// Tests of `timer job transfer`'s items file and body
// (clients/timer/transfer_items.h), with the inputs the fuzzer once crashed
// on (tests/fuzz/regressions/fuzz_items_file/).
#include "transfer_items.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::cli {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(ParseItemsFileTest, ItemsCommentsBlankLinesAndTrimming) {
  auto items = ParseItemsFile(
      "# SOURCE, DESTINATION, RECURSIVE\n\nprojects/, backup/projects/, true\n"
      "  notes.txt ,backup/notes.txt, FALSE\r\n\t# indented comment\n"
      "a.txt, b.txt, no,\n",
      "items.csv");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].source_path, "projects/");
  EXPECT_EQ((*items)[0].destination_path, "backup/projects/");
  EXPECT_TRUE((*items)[0].recursive);
  EXPECT_EQ((*items)[1].source_path, "notes.txt");
  EXPECT_FALSE((*items)[1].recursive);
  EXPECT_EQ((*items)[2].destination_path, "b.txt");
}

TEST(ParseItemsFileTest, ErrorsNameTheLine) {
  EXPECT_THAT(ParseItemsFile("a, b, true\na, b\n", "items.csv").status().message(),
              HasSubstr("items.csv:2: expected SOURCE, DESTINATION, RECURSIVE"));
  EXPECT_THAT(ParseItemsFile("a, b, true, x\n", "items.csv").status().message(),
              HasSubstr("items.csv:1: expected"));
  EXPECT_THAT(ParseItemsFile("\n# c\na, b, maybe\n", "items.csv").status().message(),
              HasSubstr("items.csv:3: \"maybe\" is not true or false"));
}

// Found by fuzz_items_file: a path that is not UTF-8 (a file saved as
// Latin-1) made the body's serialization throw, and the CLI died with an
// uncaught exception instead of a usage error.
TEST(ParseItemsFileTest, RefusesInvalidUtf8WithTheLine) {
  EXPECT_THAT(
      ParseItemsFile("ok, ok, true\nprojects/, ba\xe5kup/projects/, true\n", "items.csv")
          .status()
          .message(),
      HasSubstr("items.csv:2: not valid UTF-8"));
  auto utf8 = ParseItemsFile(
      "donn\xc3\xa9"
      "es/, sauvegarde/, 1\n",
      "items.csv");
  ASSERT_TRUE(utf8.ok()) << utf8.status();
  EXPECT_EQ((*utf8)[0].source_path,
            "donn\xc3\xa9"
            "es/");
}

TEST(TransferBodyJsonTest, BuildsTheProviderBody) {
  TransferSpec spec;
  spec.source_endpoint_id = "src";
  spec.destination_endpoint_id = "dst";
  spec.items = {{"a/", "b/", true}};
  spec.label = "nightly";
  spec.sync_level = "checksum";
  spec.verify_checksum = true;
  auto body = TransferBodyJson(spec);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(json::parse(*body),
            json::parse(R"({"source_endpoint_id": "src", "destination_endpoint_id": "dst",
                            "transfer_items": [{"source_path": "a/", "destination_path": "b/",
                                                "recursive": true}],
                            "label": "nightly", "sync_level": "checksum",
                            "verify_checksum": true})"));
}

TEST(TransferBodyJsonTest, CarriesTheTransferOptionsAndRulesInOrder) {
  TransferSpec spec;
  spec.source_endpoint_id = "src";
  spec.destination_endpoint_id = "dst";
  spec.items = {{"/~/file1.txt", "/~/new_file1.txt", false}};
  spec.delete_destination_extra = true;
  spec.skip_source_errors = true;
  spec.fail_on_quota_errors = true;
  spec.recursive_symlinks = "keep";
  spec.filter_rules = {{true, "*.txt"}, {false, "*"}};
  auto body = TransferBodyJson(spec);
  ASSERT_TRUE(body.ok()) << body.status();
  const json b = json::parse(*body);
  EXPECT_EQ(b["transfer_items"][0]["source_path"], "/~/file1.txt");  // as given
  EXPECT_EQ(b["delete_destination_extra"], true);
  EXPECT_EQ(b["skip_source_errors"], true);
  EXPECT_EQ(b["fail_on_quota_errors"], true);
  EXPECT_EQ(b["recursive_symlinks"], "keep");
  EXPECT_EQ(b["filter_rules"], json::parse(R"([
      {"DATA_TYPE": "filter_rule", "method": "include", "name": "*.txt", "type": "file"},
      {"DATA_TYPE": "filter_rule", "method": "exclude", "name": "*", "type": "file"}])"));
  // Options not given stay out of the body.
  TransferSpec plain;
  plain.items = {{"a", "b", false}};
  const json p = json::parse(*TransferBodyJson(plain));
  for (const char* key : {"delete_destination_extra", "skip_source_errors",
                          "fail_on_quota_errors", "recursive_symlinks", "filter_rules"}) {
    EXPECT_FALSE(p.contains(key)) << key;
  }
}

// globus-cli's `globus transfer --batch` lines.
TEST(ParseBatchFileTest, GlobusCliLines) {
  auto items = ParseBatchFile(
      "# SOURCE DEST [--recursive]\n"
      "\n"
      "/~/projects /~/backup/projects --recursive\n"
      "  --recursive ~/a ~/b  # trailing comment\n"
      "\"/~/my notes.txt\" '/~/backup/it'\"'\"'s.txt'\n"
      "-r x y\n"
      "plain\\ space.txt dst.txt --no-recursive\r\n"
      "-- -dash.txt d#not-a-comment.txt\n",
      "--batch b.txt");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 6u);
  const auto expect = [&](size_t i, const std::string& s, const std::string& d, bool r) {
    EXPECT_EQ((*items)[i].source_path, s) << i;
    EXPECT_EQ((*items)[i].destination_path, d) << i;
    EXPECT_EQ((*items)[i].recursive, r) << i;
  };
  expect(0, "/~/projects", "/~/backup/projects", true);
  expect(1, "~/a", "~/b", true);
  expect(2, "/~/my notes.txt", "/~/backup/it's.txt", false);
  expect(3, "x", "y", true);
  expect(4, "plain space.txt", "dst.txt", false);
  expect(5, "-dash.txt", "d#not-a-comment.txt", false);
}

TEST(ParseBatchFileTest, ErrorsNameTheLine) {
  struct Case {
    std::string text, needle;
  };
  const std::vector<Case> cases = {
      {"a\n", "--batch f:1: expected SOURCE_PATH DEST_PATH [--recursive], got 1 path"},
      {"\na b c\n", "--batch f:2: expected SOURCE_PATH DEST_PATH [--recursive], got 3"},
      {"a b --verbose\n", "--batch f:1: unknown option --verbose"},
      {"a b --external-checksum=abc\n",
       "--batch f:1: --external-checksum=abc is not supported"},
      {"'a b\n", "--batch f:1: no closing '"},
      {"\"a b\n", "--batch f:1: no closing \""},
      {"a \xff\n", "--batch f:1: not valid UTF-8"},
  };
  for (const Case& c : cases) {
    auto items = ParseBatchFile(c.text, "--batch f");
    EXPECT_EQ(items.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(items.status().message(), HasSubstr(c.needle));
  }
  auto empty = ParseBatchFile("# nothing\n\n", "--batch f");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(TransferBodyJsonTest, InvalidUtf8IsAnErrorNamingTheField) {
  TransferSpec spec;
  spec.source_endpoint_id = "src";
  spec.destination_endpoint_id = "dst";
  spec.items = {{"a", "b", false}, {"c", "d\xff", false}};
  EXPECT_THAT(TransferBodyJson(spec).status().message(),
              HasSubstr("transfer_items[1].destination_path: not valid UTF-8"));
  spec.items.pop_back();
  spec.label = "\xc3";
  EXPECT_THAT(TransferBodyJson(spec).status().message(),
              HasSubstr("label: not valid UTF-8"));
}

TEST(ParseBoolArgTest, TrueFalseInAnyCase) {
  EXPECT_TRUE(*ParseBoolArg("TRUE", "--item"));
  EXPECT_TRUE(*ParseBoolArg("yes", "--item"));
  EXPECT_FALSE(*ParseBoolArg("0", "--item"));
  EXPECT_THAT(ParseBoolArg("2", "--item").status().message(),
              HasSubstr("--item: \"2\" is not true or false"));
}

}  // namespace
}  // namespace timer::cli
