// The transfer provider's body rules (plugins/transfer/transfer_options.h):
// Globus path forms, filter rules, the link rules of recursive_symlinks,
// error classes and the Globus body's fields, as pure functions.
#include "transfer_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "local_fs.h"

namespace timer::plugins::transfer {
namespace {

using json = nlohmann::json;

// ResolvePath's components, or "ERROR: message".
std::string Resolve(const std::string& home, const std::string& identity,
                    const std::string& path) {
  Path out;
  Err e = ResolvePath(home, identity, path, "item.source_path", &out);
  if (!e.ok()) return "ERROR: " + e.message;
  std::string s;
  for (const std::string& c : out) s += "/" + c;
  return s.empty() ? "/" : s;
}

TEST(ResolvePathTest, GlobusFormsWithAHomeTemplate) {
  const std::string home = "home/{identity}";
  const std::string me = "alice@example.org";
  struct Case {
    std::string path, want;
  };
  const std::vector<Case> cases = {
      {"/", "/"},
      {"/data/x.txt", "/data/x.txt"},
      {"//data//./x.txt/", "/data/x.txt"},
      {"/~", "/home/alice@example.org"},
      {"/~/", "/home/alice@example.org"},
      {"/~/file1.txt", "/home/alice@example.org/file1.txt"},
      {"~", "/home/alice@example.org"},
      {"~/file1.txt", "/home/alice@example.org/file1.txt"},
      {"~//a/b", "/home/alice@example.org/a/b"},
      {"file1.txt", "/home/alice@example.org/file1.txt"},
      {"", "/home/alice@example.org"},
      {".", "/home/alice@example.org"},
      {"./~bob", "/home/alice@example.org/~bob"},  // a file named ~bob
      {"/~bob/x", "/~bob/x"},                      // from the root: a name
      {"a/~/b", "/home/alice@example.org/a/~/b"},  // "~" inside: a name
  };
  for (const Case& c : cases) EXPECT_EQ(Resolve(home, me, c.path), c.want) << c.path;
}

TEST(ResolvePathTest, WithoutAHomeEveryFormIsFromTheRoot) {
  EXPECT_EQ(Resolve("", "alice", "/~/f"), "/f");
  EXPECT_EQ(Resolve("", "alice", "~/f"), "/f");
  EXPECT_EQ(Resolve("", "alice", "f"), "/f");
  EXPECT_EQ(Resolve("/", "alice", "/f"), "/f");
  EXPECT_EQ(Resolve("shared/data", "alice", "~/f"), "/shared/data/f");
}

TEST(ResolvePathTest, DotDotAndOtherHomesAreRefusedNamingTheField) {
  for (const char* path :
       {"..", "/..", "/~/..", "~/../x", "a/../../b", "/a/..", "/~/a/../.."}) {
    const std::string got = Resolve("home/{identity}", "alice", path);
    EXPECT_EQ(got.rfind("ERROR: item.source_path: \"..\" is not allowed", 0), 0)
        << path << " -> " << got;
  }
  EXPECT_NE(
      Resolve("home/{identity}", "alice", "~bob/x").find("item.source_path: \"~bob\""),
      std::string::npos);
  EXPECT_NE(Resolve("", "alice", std::string("a\0b", 3)).find("contains NUL"),
            std::string::npos);
  EXPECT_NE(Resolve("", "alice", "/" + std::string(256, 'x')).find("longer than 255"),
            std::string::npos);
}

// An identity is one path component in its home, never more: "/", ".."
// and "." could otherwise climb out of home/ or into another's home.
TEST(ResolvePathTest, AHostileIdentityNeverEscapesItsHome) {
  const std::vector<std::string> hostile = {
      "../../etc",           "..", ".", "a/b", "/abs", "", std::string(256, 'x'),
      std::string("a\0b", 3)};
  for (const std::string& who : hostile) {
    SCOPED_TRACE(who);
    const std::string got = Resolve("home/{identity}", who, "~/x");
    EXPECT_EQ(got.rfind("ERROR: item.source_path: identity", 0), 0) << got;
    EXPECT_EQ(Resolve("home/{identity}", who, "rel").rfind("ERROR:", 0), 0);
    // Paths from the root do not use the home: they still work.
    EXPECT_EQ(Resolve("home/{identity}", who, "/shared/x"), "/shared/x");
  }
  // A template gluing the identity to a dot cannot make "..".
  EXPECT_EQ(Resolve("home/{identity}.", ".", "~/x").rfind("ERROR:", 0), 0);
  EXPECT_EQ(Resolve("home/u-{identity}", "bob", "~/x"), "/home/u-bob/x");
  EXPECT_EQ(Resolve("{identity}/{identity}", "b", "~"), "/b/b");
}

TEST(ResolvePathTest, HomeTemplatesAreCheckedAtConfig) {
  EXPECT_TRUE(CheckHomeTemplate("", "h").ok());
  EXPECT_TRUE(CheckHomeTemplate("home/{identity}", "h").ok());
  EXPECT_TRUE(CheckHomeTemplate("/users/{identity}/data", "h").ok());
  EXPECT_EQ(CheckHomeTemplate("../{identity}", "h").code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(CheckHomeTemplate("home/{user}", "h").code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(CheckHomeTemplate("a/../b", "endpoints[0].home")
                .message.find("endpoints[0].home: \"..\""),
            std::string::npos);
}

FilterRules Rules(const json& rules) {
  FilterRules out;
  Err e = FilterRules::Parse(rules, "filter_rules", &out);
  EXPECT_TRUE(e.ok()) << e.message;
  return out;
}

TEST(FilterRulesTest, FirstMatchWinsAndNoMatchIncludes) {
  // Globus's example: only .txt files.
  FilterRules txt = Rules(json::array({
      {{"DATA_TYPE", "filter_rule"},
       {"method", "include"},
       {"name", "*.txt"},
       {"type", "file"}},
      {{"method", "exclude"}, {"name", "*"}, {"type", "file"}},
  }));
  EXPECT_TRUE(txt.Included("a.txt", false));
  EXPECT_FALSE(txt.Included("a.log", false));
  EXPECT_FALSE(txt.Included(".hidden", false));  // '*' matches a leading dot
  EXPECT_TRUE(txt.Included("anything", true));   // file rules leave directories alone
  EXPECT_TRUE(txt.Included("dir.txt", true));

  // The method defaults to exclude; type unset applies to both.
  FilterRules tmp = Rules(json::array({{{"name", "tmp?"}}, {{"name", "[!a-c]*.o"}}}));
  EXPECT_FALSE(tmp.Included("tmp1", true));
  EXPECT_FALSE(tmp.Included("tmpx", false));
  EXPECT_TRUE(tmp.Included("tmp12", false));
  EXPECT_FALSE(tmp.Included("x.o", false));
  EXPECT_TRUE(tmp.Included("b.o", false));

  EXPECT_TRUE(Rules(json(nullptr)).empty());
  EXPECT_TRUE(FilterRules().Included("x", false));
}

// A tenant's rules cost a bounded time per name: at most 1000 rules of
// 1024 bytes against names of 255 (glibc's fnmatch does not backtrack
// exponentially over many '*').
TEST(FilterRulesTest, AHostilePatternIsCheap) {
  std::string glob;
  for (int i = 0; i < 100; ++i) glob += "*a";
  glob += "*b";
  json rules = json::array();
  for (int i = 0; i < 100; ++i) rules.push_back({{"name", glob}});
  FilterRules hostile = Rules(rules);
  const std::string name(255, 'a');
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(hostile.Included(name, false));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(FilterRulesTest, BadRulesAreRefusedNamingTheField) {
  struct Case {
    json rules;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {json::object(), "filter_rules: must be an array"},
      {json::array({"*.txt"}), "filter_rules[0]: must be an object"},
      {json::array({{{"method", "drop"}, {"name", "x"}}}), "filter_rules[0].method"},
      {json::array({{{"type", "link"}, {"name", "x"}}}), "filter_rules[0].type"},
      {json::array({{{"method", "include"}}}), "filter_rules[0].name: required"},
      {json::array({{{"name", ""}}}), "filter_rules[0].name"},
      {json::array({{{"name", "x"}, {"DATA_TYPE", "rule"}}}),
       "filter_rules[0].DATA_TYPE"},
      {json::array({{{"name", "x"}, {"glob", "y"}}}), "filter_rules[0].glob: unknown"},
  };
  for (const Case& c : cases) {
    FilterRules out;
    Err e = FilterRules::Parse(c.rules, "filter_rules", &out);
    EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT) << c.rules;
    EXPECT_NE(e.message.find(c.needle), std::string::npos) << e.message;
  }
  json many = json::array();
  for (size_t i = 0; i <= FilterRules::kMaxRules; ++i) many.push_back({{"name", "x"}});
  FilterRules out;
  EXPECT_EQ(FilterRules::Parse(many, "filter_rules", &out).code,
            TIMER_AP_INVALID_ARGUMENT);
}

TEST(RecursiveSymlinksTest, KeepOnlyTargetsThatStayInsideTheRoot) {
  EXPECT_TRUE(KeepableLinkTarget("a.txt", 0));
  EXPECT_TRUE(KeepableLinkTarget("./sub/b", 0));
  EXPECT_TRUE(KeepableLinkTarget("../x", 1));
  EXPECT_TRUE(KeepableLinkTarget("../../x/y", 2));
  EXPECT_FALSE(KeepableLinkTarget("../x", 0));  // above the root
  EXPECT_FALSE(KeepableLinkTarget("../../x", 1));
  EXPECT_FALSE(KeepableLinkTarget("/etc/passwd", 5));  // the host's, not the endpoint's
  EXPECT_FALSE(KeepableLinkTarget("", 5));
  // ".." after a name: that name may be a link elsewhere; never kept.
  EXPECT_FALSE(KeepableLinkTarget("sub/../x", 3));
  EXPECT_FALSE(KeepableLinkTarget("up/../../x", 3));
}

// A fake endpoint: path -> kind, links -> target.
struct FakeTree {
  std::map<std::string, EntryKind> kinds;
  std::map<std::string, std::string> links;
  Err Lookup(const Path& p, EntryKind* kind, std::string* target) const {
    std::string key;
    for (const std::string& c : p) key += "/" + c;
    if (auto l = links.find(key); l != links.end()) {
      *kind = EntryKind::kSymlink;
      *target = l->second;
      return Ok();
    }
    auto k = kinds.find(key);
    if (k == kinds.end()) return NotFound(key + ": missing");
    *kind = k->second;
    return Ok();
  }
};

std::string Follow(const FakeTree& t, const Path& dir, const std::string& target) {
  Path out;
  EntryKind kind = EntryKind::kOther;
  Err e = ResolveLinkBeneath(
      dir, target,
      [&t](const Path& p, EntryKind* k, std::string* n) { return t.Lookup(p, k, n); },
      &out, &kind);
  if (!e.ok()) return "ERROR " + std::to_string(e.code) + ": " + e.message;
  std::string s;
  for (const std::string& c : out) s += "/" + c;
  return (s.empty() ? "/" : s) + (kind == EntryKind::kDirectory ? " dir" : " file");
}

TEST(RecursiveSymlinksTest, CopyResolvesOnlyInsideTheRoot) {
  FakeTree t;
  t.kinds = {{"/d", EntryKind::kDirectory},
             {"/d/a.txt", EntryKind::kFile},
             {"/d/sub", EntryKind::kDirectory},
             {"/d/sub/b", EntryKind::kFile},
             {"/top.txt", EntryKind::kFile}};
  t.links = {{"/d/up", ".."},           {"/d/chain1", "chain2"},
             {"/d/chain2", "a.txt"},    {"/d/loop1", "loop2"},
             {"/d/loop2", "loop1"},     {"/d/abs", "/etc/passwd"},
             {"/d/sub/deep", "../up/d"}};
  EXPECT_EQ(Follow(t, {"d"}, "a.txt"), "/d/a.txt file");
  EXPECT_EQ(Follow(t, {"d"}, "../top.txt"), "/top.txt file");
  EXPECT_EQ(Follow(t, {"d"}, "."), "/d dir");
  EXPECT_EQ(Follow(t, {"d"}, "sub"), "/d/sub dir");
  EXPECT_EQ(Follow(t, {"d"}, "chain1"), "/d/a.txt file");
  // Through a link pointing up: resolved where it really leads.
  EXPECT_EQ(Follow(t, {"d", "sub"}, "deep/sub/b"), "/d/sub/b file");
  // Outside: FAILED_PRECONDITION (9).
  EXPECT_EQ(Follow(t, {"d"}, "../.."), "ERROR 9: points outside the endpoint root");
  EXPECT_EQ(Follow(t, {"d"}, "/etc/passwd"), "ERROR 9: points outside the endpoint root");
  EXPECT_EQ(Follow(t, {"d"}, "abs"), "ERROR 9: points outside the endpoint root");
  EXPECT_EQ(Follow(t, {"d"}, "up/.."), "ERROR 9: points outside the endpoint root");
  EXPECT_EQ(Follow(t, {"d"}, "loop1"), "ERROR 9: too many levels of symbolic links");
  EXPECT_EQ(Follow(t, {"d"}, "missing").rfind("ERROR 5", 0), 0);  // NOT_FOUND
  EXPECT_EQ(Follow(t, {"d"}, "a.txt/x").rfind("ERROR 5", 0), 0);
}

TEST(ErrorClassesTest, SourceAndQuotaErrors) {
  EXPECT_TRUE(IsSkippableSourceErrno(EACCES));
  EXPECT_TRUE(IsSkippableSourceErrno(ENOENT));
  EXPECT_TRUE(IsSkippableSourceErrno(EPERM));
  EXPECT_FALSE(IsSkippableSourceErrno(EIO));
  EXPECT_TRUE(IsQuotaErrno(ENOSPC));
  EXPECT_TRUE(IsQuotaErrno(EDQUOT));
  // A full destination is a status code (every storage's writer returns
  // RESOURCE_EXHAUSTED), never a message's text.
  EXPECT_TRUE(IsQuotaError(ErrnoError("a/b: write", ENOSPC)));
  EXPECT_TRUE(IsQuotaError(ErrnoError("a/b: copy", EDQUOT)));
  EXPECT_TRUE(IsQuotaError(ResourceExhausted("sftp: write a: the disk is full")));
  EXPECT_FALSE(IsQuotaError(ErrnoError("a/b: read", EIO)));
  EXPECT_FALSE(
      IsQuotaError(Internal(std::string("a/b: write: ") + std::strerror(ENOSPC))));
  EXPECT_EQ(ErrnoError("a/b: write", ENOSPC).message,
            std::string("a/b: write: ") + std::strerror(ENOSPC));
  EXPECT_EQ(ErrnoError("a/b: read", EIO).code, TIMER_AP_INTERNAL);
  // An EndpointFs's errors: by code (SFTP, S3), or a local strerror() text.
  EXPECT_TRUE(IsSkippableSourceError(NotFound("sftp: open a: no such file")));
  EXPECT_TRUE(IsSkippableSourceError(PermissionDenied("s3: GET a: HTTP 403")));
  EXPECT_TRUE(
      IsSkippableSourceError(Internal(std::string("a: ") + std::strerror(EACCES))));
  EXPECT_FALSE(IsSkippableSourceError(Internal(std::string("a: ") + std::strerror(EIO))));
  EXPECT_FALSE(IsSkippableSourceError(Unavailable("s3: GET a: HTTP 503")));
  EXPECT_FALSE(IsSkippableSourceError(Ok()));
}

// A local source read through the stream copier (LocalFs, when the other
// side is remote) says a file gone by its code, so skip_source_errors skips
// it as it does a missing SFTP or S3 file; a symbolic link is not skipped.
TEST(ErrorClassesTest, ALocalSourceGoneIsSkippable) {
  char tmpl[] = "/tmp/timer-options-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  ASSERT_EQ(symlink("/etc/hostname", (root + "/link").c_str()), 0);
  std::unique_ptr<EndpointFs> fs;
  ASSERT_TRUE(LocalFs::Open(root, &fs).ok());
  std::unique_ptr<FileReader> reader;
  const Err gone = fs->OpenRead({"missing.txt"}, &reader);
  EXPECT_EQ(gone.code, TIMER_AP_NOT_FOUND) << gone.message;
  EXPECT_EQ(gone.message, std::string("missing.txt: ") + std::strerror(ENOENT));
  EXPECT_TRUE(IsSkippableSourceError(gone));
  const Err link = fs->OpenRead({"link"}, &reader);
  EXPECT_EQ(link.code, TIMER_AP_INVALID_ARGUMENT) << link.message;
  EXPECT_FALSE(IsSkippableSourceError(link));
  unlink((root + "/link").c_str());
  rmdir(root.c_str());
}

Err ReadOptions(const json& body, TransferOptions* out) {
  FieldReader r(body, "");
  Err e = ReadTransferOptions(r, BodyShapeOf(body), out);
  if (!e.ok()) return e;
  (void)r.Raw("DATA_TYPE");
  (void)r.Raw("source_endpoint");
  (void)r.Raw("source_endpoint_id");
  return r.Finish();
}

TEST(BodyShapeTest, GlobusFieldsAreAppliedNotedOrRefused) {
  EXPECT_FALSE(BodyShapeOf({{"source_endpoint_id", "a"}}).globus);
  EXPECT_TRUE(BodyShapeOf({{"DATA_TYPE", "transfer"}}).globus);
  EXPECT_TRUE(BodyShapeOf({{"source_endpoint", "a"}}).globus);
  EXPECT_STREQ(BodyShapeOf({{"DATA", json::array()}}).items, "DATA");

  TransferOptions o;
  json globus = {{"DATA_TYPE", "transfer"},
                 {"skip_source_errors", true},
                 {"fail_on_quota_errors", true},
                 {"recursive_symlinks", "keep"},
                 {"filter_rules", {{{"name", "*.tmp"}}}},
                 {"notify_on_succeeded", true},
                 {"notify_on_failed", false},
                 {"submission_id", "abc"},
                 {"skip_activation_check", true}};
  Err e = ReadOptions(globus, &o);
  ASSERT_TRUE(e.ok()) << e.message;
  EXPECT_TRUE(o.skip_source_errors);
  EXPECT_TRUE(o.fail_on_quota_errors);
  EXPECT_EQ(o.recursive_symlinks, RecursiveSymlinks::kKeep);
  EXPECT_EQ(o.filter_rules.size(), 1u);
  EXPECT_TRUE(o.notes.contains("notify_on_succeeded"));
  EXPECT_FALSE(o.notes.contains("notify_on_failed"));  // false: nothing to do
  EXPECT_TRUE(o.notes.contains("submission_id"));
  EXPECT_TRUE(o.notes.contains("skip_activation_check"));

  for (const char* key : {"deadline", "source_local_user", "destination_local_user"}) {
    json b = {{"DATA_TYPE", "transfer"}, {key, "x"}};
    Err r = ReadOptions(b, &o);
    EXPECT_EQ(r.code, TIMER_AP_INVALID_ARGUMENT) << key;
    EXPECT_EQ(r.message.rfind(std::string(key) + ": not supported", 0), 0) << r.message;
  }
  // Today's shape has no notify_on_*: unknown there, as before.
  Err unknown =
      ReadOptions({{"source_endpoint_id", "a"}, {"notify_on_failed", true}}, &o);
  EXPECT_NE(unknown.message.find("notify_on_failed: unknown field"), std::string::npos)
      << unknown.message;
  Err mode = ReadOptions({{"recursive_symlinks", "follow"}}, &o);
  EXPECT_NE(mode.message.find("recursive_symlinks: must be ignore, keep or copy"),
            std::string::npos);
}

TEST(BodyShapeTest, GlobusItemFields) {
  const auto check = [](const json& item) {
    FieldReader ir(item, "DATA[0]");
    Err e = ReadGlobusItemFields(ir);
    return e.ok() ? std::string("ok") : e.message;
  };
  EXPECT_EQ(check({{"DATA_TYPE", "transfer_item"}}), "ok");
  EXPECT_EQ(check(json::object()), "ok");
  EXPECT_EQ(check({{"DATA_TYPE", "transfer_symlink_item"}}).rfind("DATA[0].DATA_TYPE", 0),
            0);
  EXPECT_EQ(check({{"DATA_TYPE", "delete_item"}}).rfind("DATA[0].DATA_TYPE", 0), 0);
  EXPECT_EQ(check({{"external_checksum", "abc"}}).rfind("DATA[0].external_checksum", 0),
            0);
  EXPECT_EQ(check({{"checksum_algorithm", "MD5"}}).rfind("DATA[0].checksum_algorithm", 0),
            0);
}

}  // namespace
}  // namespace timer::plugins::transfer
