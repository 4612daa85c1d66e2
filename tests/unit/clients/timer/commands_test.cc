// Tests of what every `timer` command shares (clients/timer/commands.h):
// global options accepted before or after the command words, the handler
// the parse selects, and the mapping of a status to the exit code. The
// command tree is the CLI's own, parsed without a server.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "job_commands.h"
#include "provider_commands.h"
#include "session_commands.h"

namespace timer::cli {
namespace {

using ::testing::HasSubstr;

// The CLI's tree, as main.cc builds it (without `completion`).
class TimerTree {
 public:
  TimerTree() {
    AddGlobalOptions(app_, g_);
    AddSessionCommands(app_, g_, commands_);
    AddJobCommands(app_, g_, commands_);
    AddProviderCommands(app_, g_, commands_);
    ShowGlobalOptionsInSubcommandHelp(app_);
    app_.require_subcommand(1);
  }

  // Parses `args` (after the program name); empty string on success, else
  // the parse error.
  std::string Parse(std::vector<std::string> args) {
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first.
    try {
      app_.parse(args);
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "";
  }

  CLI::App& app() { return app_; }
  Globals& g() { return g_; }

 private:
  CLI::App app_{"timer", "timer"};
  Globals g_;
  CommandSet commands_;
};

TEST(GlobalOptionsTest, AcceptedBeforeBetweenAndAfterTheCommandWords) {
  const std::vector<std::vector<std::string>> lines = {
      {"--format", "json", "job", "list"},
      {"job", "--format", "json", "list"},
      {"job", "list", "--format", "json"},
      {"job", "list", "--format=json", "--show-deleted"},
      {"job", "status", "--format", "json", "JOB"},
      {"job", "status", "JOB", "--format", "json"},
      {"session", "whoami", "--format", "json"},
      {"provider", "show", "noop", "--format", "json"},
  };
  for (const auto& line : lines) {
    TimerTree tree;
    EXPECT_EQ(tree.Parse(line), "") << line[0] << " " << line[1] << " " << line[2];
    EXPECT_EQ(tree.g().format, "json") << line[0] << " " << line[1] << " " << line[2];
  }
  TimerTree tree;
  EXPECT_EQ(
      tree.Parse({"job", "submit", "--interval", "1h", "--server", "h:1", "--timeout",
                  "3", "--action-provider", "noop", "--action-body", "{}", "--tls"}),
      "");
  EXPECT_EQ(tree.g().client.server, "h:1");
  EXPECT_EQ(tree.g().client.timeout_seconds, 3);
  EXPECT_TRUE(tree.g().client.tls);
}

TEST(GlobalOptionsTest, ValuesAreStillCheckedAndUnknownWordsRefused) {
  TimerTree bad_format;
  EXPECT_THAT(bad_format.Parse({"job", "list", "--format", "yaml"}),
              HasSubstr("--format"));
  TimerTree extra;
  EXPECT_THAT(extra.Parse({"job", "list", "extra"}), HasSubstr("extra"));
  TimerTree unknown;
  EXPECT_THAT(unknown.Parse({"job", "list", "--bogus"}), HasSubstr("--bogus"));
}

// `--view` of list and watch: basic or full, nothing else.
TEST(ViewOptionTest, ListAndWatchTakeBasicOrFull) {
  for (const std::vector<std::string>& line : std::vector<std::vector<std::string>>{
           {"job", "list", "--view", "full"},
           {"job", "list", "--view", "basic", "-v"},
           {"job", "watch", "--all", "--view", "full"},
           {"job", "watch", "JOB", "--view=basic"},
       }) {
    TimerTree tree;
    EXPECT_EQ(tree.Parse(line), "") << line[1] << " " << line[2];
  }
  TimerTree bad;
  EXPECT_THAT(bad.Parse({"job", "list", "--view", "everything"}), HasSubstr("--view"));
  TimerTree bad_watch;
  EXPECT_THAT(bad_watch.Parse({"job", "watch", "--all", "--view", "FULL!"}),
              HasSubstr("--view"));
}

TEST(GlobalOptionsTest, EverySubcommandHelpListsThem) {
  TimerTree tree;
  CLI::App* list = tree.app().get_subcommand("job")->get_subcommand("list");
  const std::string help = list->help();
  EXPECT_THAT(help, HasSubstr("--show-deleted"));
  EXPECT_THAT(help, HasSubstr("Global options (before or after the command"));
  EXPECT_THAT(help, HasSubstr("--format"));
  EXPECT_THAT(help, HasSubstr("--server"));
  // Not twice in the root's own help.
  const std::string root = tree.app().help();
  EXPECT_EQ(root.find("Global options"), std::string::npos);
}

TEST(SeedOptionsTest, SubmitTakesTheSeedFormIncludingScope) {
  TimerTree tree;
  EXPECT_EQ(tree.Parse({"job", "submit", "--name", "test-tutorial-job", "--interval",
                        "600", "--action-url",
                        "https://actions.automate.globus.org/transfer/transfer/run",
                        "--action-body", R"({"body": {}})", "--scope", "s"}),
            "");
  TimerTree neither;
  EXPECT_THAT(
      neither.Parse({"job", "submit", "--interval", "600", "--action-body", "{}"}),
      HasSubstr("--action-provider or --action-url"));
  TimerTree both_bodies;
  EXPECT_THAT(
      both_bodies.Parse({"job", "submit", "--interval", "600", "--action-provider",
                         "noop", "--action-body", "{}", "--action-file", "f"}),
      HasSubstr("excludes"));
}

// `job transfer`'s Globus options: --include/--exclude keep their order
// across the two options, options come anywhere, paths are taken as given.
TEST(TransferOptionsTest, IncludeAndExcludeKeepCommandLineOrder) {
  TimerTree tree;
  ASSERT_EQ(tree.Parse({"job",
                        "transfer",
                        "--exclude",
                        "*.tmp",
                        "--interval",
                        "1h",
                        "--include",
                        "keep.tmp",
                        "--source-endpoint",
                        "a",
                        "--dest-endpoint",
                        "b",
                        "--exclude",
                        "*.log",
                        "--item",
                        "/~/file1.txt",
                        "/~/new_file1.txt",
                        "false",
                        "--include=x.log",
                        "--recursive-symlinks",
                        "keep",
                        "--delete-destination-extra",
                        "--skip-source-errors",
                        "--fail-on-quota-errors",
                        "--format",
                        "json"}),
            "");
  CLI::App* transfer = tree.app().get_subcommand("job")->get_subcommand("transfer");
  const std::vector<FilterRuleArg> rules = FilterRulesInOrder(*transfer);
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_FALSE(rules[0].include);
  EXPECT_EQ(rules[0].glob, "*.tmp");
  EXPECT_TRUE(rules[1].include);
  EXPECT_EQ(rules[1].glob, "keep.tmp");
  EXPECT_FALSE(rules[2].include);
  EXPECT_EQ(rules[2].glob, "*.log");
  EXPECT_TRUE(rules[3].include);
  EXPECT_EQ(rules[3].glob, "x.log");
  EXPECT_EQ(tree.g().format, "json");
}

TEST(TransferOptionsTest, BatchRecursiveSymlinksAndHelp) {
  TimerTree ok;
  EXPECT_EQ(ok.Parse({"job", "transfer", "--interval", "1h", "--source-endpoint", "a",
                      "--dest-endpoint", "b", "--batch", "-"}),
            "");
  TimerTree both;
  EXPECT_THAT(
      both.Parse({"job", "transfer", "--interval", "1h", "--source-endpoint", "a",
                  "--dest-endpoint", "b", "--batch", "f", "--item", "x", "y", "false"}),
      HasSubstr("excludes"));
  TimerTree with_file;
  EXPECT_THAT(
      with_file.Parse({"job", "transfer", "--interval", "1h", "--source-endpoint", "a",
                       "--dest-endpoint", "b", "--batch", "f", "--items-file", "g"}),
      HasSubstr("excludes"));
  TimerTree bad_mode;
  EXPECT_THAT(
      bad_mode.Parse({"job", "transfer", "--interval", "1h", "--source-endpoint", "a",
                      "--dest-endpoint", "b", "--recursive-symlinks", "follow"}),
      HasSubstr("--recursive-symlinks"));
  TimerTree tree;
  const std::string help =
      tree.app().get_subcommand("job")->get_subcommand("transfer")->help();
  for (const char* text :
       {"--include", "--exclude", "--delete-destination-extra", "--skip-source-errors",
        "--fail-on-quota-errors", "--recursive-symlinks", "--batch", "/~/PATH",
        "Examples:", "'~/file1.txt' '~/new_file1.txt' false"}) {
    EXPECT_THAT(help, HasSubstr(text));
  }
}

TEST(CommandSetTest, RunsTheHandlerOfTheParsedCommand) {
  CLI::App app{"t", "t"};
  app.require_subcommand(1);
  CLI::App* group = app.add_subcommand("group", "");
  group->require_subcommand(1);
  CommandSet commands;
  std::vector<std::string> ran;
  commands.Add(group->add_subcommand("a", ""), [&] {
    ran.push_back("a");
    return absl::OkStatus();
  });
  commands.Add(group->add_subcommand("b", ""), [&] {
    ran.push_back("b");
    return absl::NotFoundError("b");
  });
  std::vector<std::string> args = {"b", "group"};  // Last first, as CLI11 takes them.
  app.parse(args);
  EXPECT_EQ(commands.RunParsed(), absl::NotFoundError("b"));
  EXPECT_EQ(ran, std::vector<std::string>{"b"});
  EXPECT_EQ(CommandSet().RunParsed().code(), absl::StatusCode::kInternal);
}

TEST(ExitCodeForTest, TheDocumentedCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::UnknownError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("")), 1);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), 2);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("")), 2);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), 3);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("")), 4);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("")), 4);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), 5);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("")), 5);
  EXPECT_EQ(ExitCodeFor(absl::AlreadyExistsError("")), 6);
  EXPECT_EQ(ExitCodeFor(absl::AbortedError("")), 6);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("")), 6);
  EXPECT_EQ(ExitCodeFor(absl::ResourceExhaustedError("")), 1);
}

TEST(ClientTest, GrpcErrorsBecomeStatusesThatSayWhatToDo) {
  ClientOptions options;
  options.server = "h:1";
  options.timeout_seconds = 2.5;
  absl::StatusOr<Client> client = Client::Connect(options);
  ASSERT_TRUE(client.ok());
  absl::Status down =
      client->ToStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(down.message(), "cannot reach timerd at h:1 (refused)");
  EXPECT_EQ(
      client->ToStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "")).message(),
      "timerd at h:1 did not answer within 2.5s");
  absl::Status unauth =
      client->ToStatus(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token"));
  EXPECT_EQ(unauth.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unauth.message(), HasSubstr("not authenticated: no token; log in with"));
  absl::Status missing =
      client->ToStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "job x"));
  EXPECT_EQ(missing, absl::NotFoundError("job x"));
  EXPECT_TRUE(client->ToStatus(grpc::Status::OK).ok());

  options.tls_ca = "/nonexistent/ca.pem";
  absl::StatusOr<Client> tls = Client::Connect(options);
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tls.status().message(),
              HasSubstr("--tls-ca: cannot read /nonexistent/ca.pem"));
}

}  // namespace
}  // namespace timer::cli
