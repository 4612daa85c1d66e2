// Tests of `timer job transfer`'s items file and body
// (clients/timer/transfer_items.h), with the inputs the fuzzer once crashed
// on (tests/fuzz/regressions/fuzz_items_file/).
#include "transfer_items.h"

#include <nlohmann/json.hpp>
#include <string>

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
