// End-to-end tests of the `timer` CLI as its users drive it: the installed
// timer binary against an installed timerd (with two transfer endpoints on
// temporary directories). Covers every command with a happy path and a bad
// input, the seed CLI's examples rewritten for `timer`, --start in every
// accepted form under different TZ values, and the generated bash and zsh
// completion scripts. Each test starts at most one timerd, on a free
// loopback port; its Daemon stops it.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "process.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The endpoint ids of the seed CLI's examples.
constexpr char kSrcId[] = "ddb59aef-6d04-11e5-ba46-22000b92c6ec";
constexpr char kDstId[] = "ddb59af0-6d04-11e5-ba46-22000b92c6ec";
constexpr char kUnknownJob[] = "00000000-0000-4000-8000-000000000000";

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class CliE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    src_ = tmp_.path() + "/src-endpoint";
    dst_ = tmp_.path() + "/dst-endpoint";
    fs::create_directories(src_);
    fs::create_directories(dst_);
  }

  // timerd with the seed's two endpoints as transfer endpoints.
  std::unique_ptr<Daemon> StartTimerd() {
    const std::string config = tmp_.path() + "/timerd.toml";
    std::ofstream(config) << "[[plugins.transfer.endpoints]]\n"
                          << "id = \"" << kSrcId << "\"\n"
                          << "root = \"" << src_ << "\"\n"
                          << "allowed_identities = [\"*\"]\n"
                          << "[[plugins.transfer.endpoints]]\n"
                          << "id = \"" << kDstId << "\"\n"
                          << "root = \"" << dst_ << "\"\n"
                          << "allowed_identities = [\"*\"]\n";
    return CliTest::StartTimerd({"--config", config});
  }

  // `timer`, as Cli() runs it, with extra environment (e.g. "TZ=Asia/Tokyo").
  RunResult CliEnv(const std::vector<std::string>& env, std::vector<std::string> args) {
    return CliAs(token_, std::move(args), env);
  }

  json CliJsonEnv(const std::vector<std::string>& env, std::vector<std::string> args) {
    args.insert(args.begin(), {"--format", "json"});
    RunResult r = CliEnv(env, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json parsed = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << r.out;
    return parsed;
  }

  // The schedule.start that `timer job submit --start START` stores, under TZ.
  std::string StartUtc(const std::string& tz, const std::string& start) {
    json job =
        CliJsonEnv({"TZ=" + tz}, {"job", "submit", "--interval", "1d", "--start", start,
                                  "--action-provider", "noop", "--action-body", "{}"});
    return job["schedule"].value("start", "");
  }

  static json Body(const json& job) {
    return json::parse(job["action"]["body"].get<std::string>(), nullptr, false);
  }

  // Runs a bash script that sources the generated completion script and
  // defines `complete_line WORD...` (the last word is the one being
  // completed), which prints COMPREPLY on one line.
  RunResult Bash(const std::string& commands) {
    const std::string script_path = tmp_.path() + "/timer.bash";
    RunResult gen = timer::testing::Run({timer_, "completion", "bash"});
    EXPECT_EQ(gen.exit_code, 0) << gen.err;
    WriteFile(script_path, gen.out);
    const std::string driver = tmp_.path() + "/driver.bash";
    WriteFile(driver, "source '" + script_path + "' || exit 9\n" +
                          "complete_line() {\n"
                          "  COMP_WORDS=(\"$@\")\n"
                          "  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                          "  COMP_LINE=\"$*\"\n"
                          "  COMP_POINT=${#COMP_LINE}\n"
                          "  _timer\n"
                          "  echo \"${COMPREPLY[*]}\"\n"
                          "}\n" +
                          commands);
    return timer::testing::Run({"/bin/bash", "--noprofile", "--norc", driver});
  }

  std::string src_, dst_;
};

// ---- Shell completion ----

TEST_F(CliE2eTest, BashCompletionScriptIsValidAndCompletesCommandsOptionsAndValues) {
  RunResult gen = timer::testing::Run({timer_, "completion", "bash"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  WriteFile(tmp_.path() + "/syntax.bash", gen.out);
  RunResult syntax =
      timer::testing::Run({"/bin/bash", "-n", tmp_.path() + "/syntax.bash"});
  EXPECT_EQ(syntax.exit_code, 0) << syntax.err;
  EXPECT_TRUE(Contains(gen.out, "complete -F _timer timer")) << gen.out;

  WriteFile(tmp_.path() + "/items.csv", "a, b, true\n");
  struct Case {
    std::string line;  // Words; the last one (maybe empty) is being completed.
    std::string want;
  };
  const std::vector<Case> cases = {
      {"timer jo", "job"},
      {"timer job st", "status"},
      {"timer p", "provider"},
      {"timer provider ''", "list show"},
      {"timer job r", "resume run-now results"},
      {"timer job submit --int", "--interval"},
      {"timer job submit --action-p", "--action-provider"},
      {"timer job transfer --so", "--source-endpoint"},
      {"timer job status -", "-h --help -v --verbose --show-deleted"},
      {"timer job list --show", "--show-deleted"},
      {"timer job run-now --req", "--request-id"},
      {"timer --f", "--format"},
      // Option values: choices from the CLI's own checks.
      {"timer --format ''", "table json"},
      {"timer --format = j", "json"},
      {"timer job submit --overlap-policy b", "buffer_one"},
      {"timer job update ID --missed-run-policy ''", "skip run_once"},
      {"timer job transfer --sync-level ''", "exists size mtime checksum"},
      {"timer completion ''", "bash zsh"},
      // Option values are skipped when finding the command: --server takes
      // one word, --item three.
      {"timer --server 127.0.0.1:1 --format json job l", "list"},
      {"timer job transfer --item a b true --sy", "--sync-level"},
      // Global options after a command: their values and arity still known.
      {"timer job list --format ''", "table json"},
      {"timer job --server 127.0.0.1:1 l", "list"},
      {"timer job transfer --item a b ''", ""},
      // A file option completes file names.
      {"timer job transfer --items-file '" + tmp_.path() + "/ite'",
       tmp_.path() + "/items.csv"},
      // Nothing made up: a job id is not completed, an unknown command has
      // no completions.
      {"timer job status ''", ""},
      {"timer nope ''", ""},
  };
  std::string commands;
  for (const Case& c : cases) commands += "complete_line " + c.line + "\n";
  RunResult r = Bash(commands);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), cases.size()) << r.out;
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(lines[i], cases[i].want) << cases[i].line;
  }
  EXPECT_EQ(r.err, "");
}

// The script is generated from the CLI's tree, so every command and option
// the CLI has is offered.
TEST_F(CliE2eTest, BashCompletionOffersEveryCommandAndOption) {
  RunResult r = Bash(
      "complete_line timer ''\n"
      "complete_line timer job ''\n"
      "complete_line timer job transfer -\n"
      "complete_line timer job submit -\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream out(r.out);
  std::string top, job, transfer, submit;
  std::getline(out, top);
  std::getline(out, job);
  std::getline(out, transfer);
  std::getline(out, submit);
  for (const char* c : {"job", "provider", "completion"}) {
    EXPECT_TRUE(Contains(" " + top + " ", std::string(" ") + c + " ")) << top;
  }
  for (const char* c : {"submit", "status", "list", "delete", "update", "pause", "resume",
                        "run-now", "results", "transfer"}) {
    EXPECT_TRUE(Contains(" " + job + " ", std::string(" ") + c + " ")) << job;
  }
  for (const char* o : {"--name", "--label", "--interval", "--start", "--source-endpoint",
                        "--dest-endpoint", "--item", "--items-file", "--sync-level",
                        "--verify-checksum", "--encrypt-data", "--preserve-timestamp",
                        "--stop-after-runs", "--stop-after-date"}) {
    EXPECT_TRUE(Contains(" " + transfer + " ", std::string(" ") + o + " ")) << transfer;
  }
  for (const char* o : {"--action-provider", "--action-url", "--action-body",
                        "--action-file", "--start-time", "--overlap-policy",
                        "--max-concurrent", "--missed-run-policy", "--request-id"}) {
    EXPECT_TRUE(Contains(" " + submit + " ", std::string(" ") + o + " ")) << submit;
  }
}

TEST_F(CliE2eTest, ZshCompletionScriptIsValidAndRegistersItself) {
  RunResult gen = timer::testing::Run({timer_, "completion", "zsh"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const std::string& s = gen.out;
  // Structure: a compsys function per command, dispatching on subcommands,
  // with the options, their choices and file arguments.
  EXPECT_EQ(s.rfind("#compdef timer\n", 0), 0u) << s;
  for (const char* part :
       {"_timer() {", "_timer_job() {", "_timer_job_status() {", "_timer_job_run_now() {",
        "_timer_provider_show() {", "status) _timer_job_status ;;",
        "'run-now:run a job once now", "'(-v --verbose)'{-v,--verbose}'[",
        "'--show-deleted[", "'--format=[output format]:format:(table json)'", "'*--item[",
        ":items-file:_files'", ":sync-level:(exists size mtime checksum)'",
        "':SHELL:(bash zsh)'", "compdef _timer timer"}) {
    EXPECT_TRUE(Contains(s, part)) << "missing " << part;
  }
  const std::string zsh = fs::exists("/usr/bin/zsh") ? "/usr/bin/zsh" : "/bin/zsh";
  ASSERT_TRUE(fs::exists(zsh)) << "zsh is not installed (scripts/deps.sh installs it)";
  const std::string path = tmp_.path() + "/_timer";
  WriteFile(path, s);
  RunResult syntax = timer::testing::Run({zsh, "-n", path});
  EXPECT_EQ(syntax.exit_code, 0) << syntax.err;
  // Sourced after compinit, it registers _timer for `timer`.
  RunResult sourced =
      timer::testing::Run({zsh, "-f", "-c",
                           "autoload -U compinit && compinit -u -D && source '" + path +
                               "' && print -r -- ${_comps[timer]}"},
                          {"HOME=" + tmp_.path()});
  EXPECT_EQ(sourced.exit_code, 0) << sourced.err;
  EXPECT_EQ(sourced.out, "_timer\n") << sourced.err;
}

TEST_F(CliE2eTest, CompletionNeedsAKnownShell) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"completion"}, {"completion", "fish"}}) {
    RunResult r = timer::testing::Run([&] {
      std::vector<std::string> argv = {timer_};
      argv.insert(argv.end(), args.begin(), args.end());
      return argv;
    }());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(Contains(r.err, "SHELL")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  RunResult help = timer::testing::Run({timer_, "completion", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "timer completion bash > ")) << help.out;
  EXPECT_TRUE(Contains(help.out, "timer completion zsh > ")) << help.out;
}

// ---- Every command: a happy path and one bad input ----

TEST_F(CliE2eTest, EveryCommandHasAHappyPathAndRefusesABadInput) {
  WriteFile(src_ + "/file1.txt", "one\n");
  auto daemon = StartTimerd();

  // Happy paths.
  json job = CliJson({"job", "submit", "--name", "matrix", "--interval", "15m", "--start",
                      "2030-01-01T00:00:00Z", "--action-provider", "noop",
                      "--action-body", "{}"});
  const std::string id = job["job_id"];
  EXPECT_EQ(job["name"], "matrix");
  EXPECT_EQ(job["schedule"]["interval_seconds"], "900");

  EXPECT_EQ(CliJson({"job", "status", id})["job_id"], id);
  json list = CliJson({"job", "list"});
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_EQ(list["jobs"][0]["job_id"], id);

  json updated = CliJson({"job", "update", id, "--name", "renamed", "--interval", "12h",
                          "--stop-after-runs", "10", "--overlap-policy", "buffer_one"});
  EXPECT_EQ(updated["name"], "renamed");
  EXPECT_EQ(updated["schedule"]["interval_seconds"], "43200");
  EXPECT_EQ(updated["schedule"]["stop_after_runs"], "10");
  EXPECT_EQ(updated["overlap_policy"], "BUFFER_ONE");
  EXPECT_EQ(updated["schedule"]["start"], "2030-01-01T00:00:00Z");  // Untouched.

  EXPECT_EQ(CliJson({"job", "pause", id})["status"], "PAUSED");
  EXPECT_EQ(CliJson({"job", "resume", id})["status"], "NEW");
  EXPECT_EQ(CliJson({"job", "run-now", id})["n_runs"], "1");
  json results = CliJson({"job", "results", id})["results"];
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0]["run_number"], "1");
  EXPECT_TRUE(results[0]["manual"].get<bool>());

  json transfer =
      CliJson({"job", "transfer", "--name", "copy", "--interval", "1d", "--start",
               "2030-01-01T00:00:00Z", "--source-endpoint", kSrcId, "--dest-endpoint",
               kDstId, "--item", "file1.txt", "copy.txt", "false"});
  EXPECT_EQ(transfer["action"]["provider"], "transfer");

  std::vector<std::string> providers;
  const json provider_list = CliJson({"provider", "list"});
  for (const json& p : provider_list["action_providers"]) providers.push_back(p["name"]);
  EXPECT_EQ(providers, (std::vector<std::string>{"noop", "transfer"}));
  EXPECT_EQ(CliJson({"provider", "show", "noop"})["name"], "noop");

  // An ended job (it starts now and stops after one run) is a conflict for pause.
  json ended = CliJson({"job", "submit", "--interval", "1", "--stop-after-runs", "1",
                        "--action-provider", "noop", "--action-body", "{}"});
  const std::string ended_id = ended["job_id"];
  WaitForJob(ended_id, [](const json& j) { return j["status"] == "ENDED"; });

  // Bad inputs: exit code and a one-line message naming the option or field.
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"job", "submit", "--interval", "1h", "--action-provider", "noop"},
       2,
       "--action-body"},
      {{"job", "status"}, 2, "JOB_ID"},
      {{"job", "list", "--show-deleted", "extra"}, 2, "extra"},
      {{"job", "update", id, "--overlap-policy", "sometimes"}, 2, "--overlap-policy"},
      {{"job", "update", id}, 2, "job update"},
      {{"job", "pause", kUnknownJob}, 3, "not found"},
      {{"job", "pause", ended_id}, 6, "ended"},
      {{"job", "resume", "not-a-uuid"}, 2, "job_id"},
      {{"job", "run-now", kUnknownJob}, 3, "not found"},
      {{"job", "results", "not-a-uuid"}, 2, "job_id"},
      {{"job", "delete", kUnknownJob}, 3, "not found"},
      {{"job", "transfer", "--interval", "1h", "--source-endpoint", kSrcId,
        "--dest-endpoint", kDstId, "--item", "file1.txt", "x.txt", "false",
        "--sync-level", "sometimes"},
       2,
       "--sync-level"},
      {{"job", "transfer", "--interval", "1h", "--source-endpoint", kSrcId,
        "--dest-endpoint", kDstId, "--items-file", tmp_.path() + "/missing.csv"},
       2,
       "--items-file"},
      {{"provider", "list", "extra"}, 2, "extra"},
      {{"provider", "show", "nope"}, 3, "\"nope\""},
      {{"--format", "yaml", "job", "list"}, 2, "--format"},
  };
  for (const Case& c : cases) {
    RunResult r = Cli(c.args);
    const std::string what = c.args[0] + " " + c.args[1];
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, c.message))
        << what << ": wanted " << c.message << " in " << r.err;
    EXPECT_EQ(r.err.rfind("timer: ", 0), 0u) << what << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << ": " << r.err;
    EXPECT_EQ(r.out, "") << what;
  }
  // The bad inputs changed nothing.
  EXPECT_EQ(CliJson({"job", "status", id})["name"], "renamed");
  EXPECT_EQ(CliJson({"job", "list"})["jobs"].size(), 3u);

  // Delete last: it prints the final state.
  EXPECT_EQ(CliJson({"job", "delete", id})["status"], "DELETED");
}

// ---- The seed CLI's examples, rewritten for `timer` ----

// globus-timer job transfer --name example-job --label "Timer Transfer Job"
//   --interval 28800 --start '2020-01-01T12:34:56' --source-endpoint ...
//   --dest-endpoint ... --item ~/file1.txt ~/new_file1.txt false --item ...
// and the same items from the seed's transfer_items.csv. Paths are relative
// to each endpoint's root (the seed's ~ was the endpoint's home).
TEST_F(CliE2eTest, SeedTransferExampleAndItsItemsFile) {
  auto daemon = StartTimerd();
  json job = CliJsonEnv({"TZ=UTC"}, {"job",
                                     "transfer",
                                     "--name",
                                     "example-job",
                                     "--label",
                                     "Timer Transfer Job",
                                     "--interval",
                                     "28800",
                                     "--start",
                                     "2020-01-01T12:34:56",
                                     "--source-endpoint",
                                     kSrcId,
                                     "--dest-endpoint",
                                     kDstId,
                                     "--item",
                                     "file1.txt",
                                     "new_file1.txt",
                                     "false",
                                     "--item",
                                     "file2.txt",
                                     "new_file2.txt",
                                     "false"});
  EXPECT_EQ(job["name"], "example-job");
  EXPECT_EQ(job["label"], "Timer Transfer Job");
  EXPECT_EQ(job["schedule"]["interval_seconds"], "28800");
  EXPECT_EQ(job["schedule"]["start"], "2020-01-01T12:34:56Z");
  EXPECT_EQ(job["action"]["provider"], "transfer");
  const json items = json::array({{{"source_path", "file1.txt"},
                                   {"destination_path", "new_file1.txt"},
                                   {"recursive", false}},
                                  {{"source_path", "file2.txt"},
                                   {"destination_path", "new_file2.txt"},
                                   {"recursive", false}}});
  json body = Body(job);
  EXPECT_EQ(body["source_endpoint_id"], kSrcId);
  EXPECT_EQ(body["destination_endpoint_id"], kDstId);
  EXPECT_EQ(body["label"], "Timer Transfer Job");
  EXPECT_EQ(body["transfer_items"], items);

  // The seed's items file, with more comments, blank and blank-looking
  // lines, and a CRLF line ending.
  const std::string csv = tmp_.path() + "/transfer_items.csv";
  WriteFile(csv,
            "# This is my items file\n"
            "\n"
            "file1.txt, new_file1.txt, false\n"
            "   # an indented comment\n"
            "  \t \n"
            "file2.txt,new_file2.txt,FALSE\r\n"
            "\n"
            "# the end\n");
  json from_file =
      CliJsonEnv({"TZ=UTC"}, {"job", "transfer", "--name", "example-job", "--label",
                              "Timer Transfer Job", "--interval", "28800", "--start",
                              "2020-01-01T12:34:56", "--source-endpoint", kSrcId,
                              "--dest-endpoint", kDstId, "--items-file", csv});
  EXPECT_EQ(Body(from_file), body);

  // A bad line is named by file and line number.
  WriteFile(csv, "# header\n\nfile1.txt, new_file1.txt\n");
  RunResult bad = Cli({"job", "transfer", "--interval", "1h", "--source-endpoint", kSrcId,
                       "--dest-endpoint", kDstId, "--items-file", csv});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(Contains(bad.err, "--items-file " + csv + ":3")) << bad.err;
  // --item and --items-file are alternatives, as in the seed.
  RunResult both =
      Cli({"job", "transfer", "--interval", "1h", "--source-endpoint", kSrcId,
           "--dest-endpoint", kDstId, "--items-file", csv, "--item", "a", "b", "true"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_TRUE(Contains(both.err, "--item")) << both.err;
}

// globus-timer job submit --name test-tutorial-job --interval 600
//   --action-url https://actions.automate.globus.org/transfer/transfer/run
//   --action-body '{"body": {"source_endpoint_id": ..., "transfer_items": [...]}}'
// runs unchanged but for the command name and the paths: the URL's
// .../transfer/run names the transfer provider and the {"body": ...} wrapper
// is unwrapped. Paths follow Globus's conventions: the seed's /~/file1.txt is
// file1.txt in the caller's home on the endpoint (here, without a `home`
// key, its root), as is the relative file1.txt. The jobs start now and their
// first runs copy.
TEST_F(CliE2eTest, SeedSubmitExampleRunsThroughActionUrl) {
  WriteFile(src_ + "/file1.txt", "seed\n");
  auto daemon = StartTimerd();
  const std::string seed_url =
      "https://actions.automate.globus.org/transfer/transfer/run";
  const auto seed_body = [](const std::string& src_path, const std::string& dst_path) {
    return std::string(R"({"body": {"source_endpoint_id": ")") + kSrcId +
           R"(", "destination_endpoint_id": ")" + kDstId +
           R"(", "transfer_items": [{"source_path": ")" + src_path +
           R"(", "destination_path": ")" + dst_path + R"("}]}})";
  };

  const auto wait_for_run = [this](const std::string& id) {
    return WaitForJob(id, [](const json& j) {
      return j.contains("results") && !j["results"].empty() &&
             j["results"][0]["status"] != "PENDING" &&
             j["results"][0]["status"] != "ACTIVE";
    });
  };
  // The seed's command line word for word after the command name reaches
  // the transfer provider, unwrapped, and runs with its paths.
  json seed = CliJson({"job", "submit", "--name", "test-tutorial-job", "--interval",
                       "600", "--action-url", seed_url, "--action-body",
                       seed_body("/~/file1.txt", "/~/new_file1.txt")});
  EXPECT_EQ(Body(seed),
            json::parse(seed_body("/~/file1.txt", "/~/new_file1.txt"))["body"]);
  json seed_done = wait_for_run(seed["job_id"]);
  EXPECT_EQ(seed_done["results"][0]["status"], "SUCCEEDED") << seed_done.dump();
  EXPECT_EQ(ReadFile(dst_ + "/new_file1.txt"), "seed\n");

  json job = CliJson({"job", "submit", "--name", "test-tutorial-job", "--interval", "600",
                      "--action-url", seed_url, "--action-body",
                      seed_body("file1.txt", "relative_file1.txt")});
  EXPECT_EQ(job["name"], "test-tutorial-job");
  EXPECT_EQ(job["schedule"]["interval_seconds"], "600");
  EXPECT_EQ(job["action"]["provider"], "transfer");
  EXPECT_EQ(Body(job), json::parse(seed_body("file1.txt", "relative_file1.txt"))["body"]);
  const std::string id = job["job_id"];
  json done = wait_for_run(id);
  EXPECT_EQ(done["results"][0]["status"], "SUCCEEDED") << done.dump();
  EXPECT_EQ(ReadFile(dst_ + "/relative_file1.txt"), "seed\n");

  // A plain provider name is a URL whose last segment names it; --action-file
  // takes the same wrapped body; --scope is accepted and ignored.
  const std::string body_file = tmp_.path() + "/body.json";
  WriteFile(body_file, seed_body("file1.txt", "again.txt"));
  json from_file =
      CliJson({"job", "submit", "--interval", "1d", "--start", "2030-01-01",
               "--action-url", "transfer", "--action-file", body_file, "--scope",
               "https://auth.globus.org/scopes/actions.globus.org/"
               "transfer/transfer"});
  EXPECT_EQ(from_file["action"]["provider"], "transfer");
  EXPECT_EQ(Body(from_file)["transfer_items"][0]["destination_path"], "again.txt");

  // A URL naming no loaded provider, or disagreeing with --action-provider,
  // is refused before anything is created, naming --action-url.
  RunResult unknown = Cli({"job", "submit", "--interval", "600", "--action-url",
                           "https://actions.automate.globus.org/search/ingest/run",
                           "--action-body", "{}"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
  EXPECT_TRUE(Contains(unknown.err, "--action-url")) << unknown.err;
  EXPECT_TRUE(Contains(unknown.err, "\"ingest\"")) << unknown.err;
  RunResult both = Cli({"job", "submit", "--interval", "600", "--action-url", seed_url,
                        "--action-provider", "noop", "--action-body", "{}"});
  EXPECT_EQ(both.exit_code, 2) << both.err;
  EXPECT_TRUE(Contains(both.err, "--action-provider")) << both.err;
  EXPECT_EQ(CliJson({"job", "list"})["jobs"].size(), 3u);
}

// Global options go before, between or after the command words, as with
// kubectl, gh or globus: the three forms give the same answer.
TEST_F(CliE2eTest, GlobalOptionsAnywhere) {
  auto daemon = StartTimerd();
  json job = CliJson({"job", "submit", "--name", "anywhere", "--interval", "1h",
                      "--start", "2030-01-01T00:00:00Z", "--action-provider", "noop",
                      "--action-body", "{}"});
  std::vector<json> lists;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"job", "list", "--format", "json"},
                                             {"job", "--format", "json", "list"},
                                             {"--format", "json", "job", "list"}}) {
    RunResult r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    lists.push_back(json::parse(r.out, nullptr, /*allow_exceptions=*/false));
    ASSERT_FALSE(lists.back().is_discarded()) << r.out;
  }
  ASSERT_EQ(lists[0]["jobs"].size(), 1u);
  EXPECT_EQ(lists[0]["jobs"][0]["job_id"], job["job_id"]);
  EXPECT_EQ(lists[1], lists[0]);
  EXPECT_EQ(lists[2], lists[0]);

  // After a positional too, and --timeout with --format.
  RunResult status = Cli({"job", "status", job["job_id"].get<std::string>(), "--format",
                          "json", "--timeout", "5"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["name"], "anywhere");
  // Still checked where given.
  RunResult bad = Cli({"job", "list", "--format", "yaml"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(Contains(bad.err, "--format")) << bad.err;
  // And listed in each command's --help.
  RunResult help = Cli({"job", "list", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "Global options")) << help.out;
  EXPECT_TRUE(Contains(help.out, "--format")) << help.out;
}

// globus-timer job status <job_id>; job status --verbose JOB_ID; job list;
// job delete <job_id> (prints the final state); job status --show-deleted.
TEST_F(CliE2eTest, SeedMonitoringCommands) {
  auto daemon = StartTimerd();
  json job = CliJson({"job", "submit", "--name", "watched", "--interval", "1h", "--start",
                      "2030-01-01T00:00:00Z", "--action-provider", "noop",
                      "--action-body", "{}"});
  const std::string id = job["job_id"];
  CliJson({"job", "run-now", id});
  WaitForJob(id, [](const json& j) {
    return !j["results"].empty() && j["results"][0]["status"] == "SUCCEEDED";
  });

  RunResult status = Cli({"job", "status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(Contains(status.out, id)) << status.out;
  EXPECT_TRUE(Contains(status.out, "watched")) << status.out;
  EXPECT_TRUE(Contains(status.out, "Next run:     2030-01-01T00:00:00Z")) << status.out;
  EXPECT_TRUE(Contains(status.out, "Last result:  SUCCEEDED (run 1)")) << status.out;
  EXPECT_FALSE(Contains(status.out, "Action body:")) << status.out;  // Summary only.

  RunResult verbose = Cli({"job", "status", "--verbose", id});
  ASSERT_EQ(verbose.exit_code, 0) << verbose.err;
  EXPECT_TRUE(Contains(verbose.out, "Action body:")) << verbose.out;
  EXPECT_TRUE(Contains(verbose.out, "scheduled ")) << verbose.out;  // Each result.
  RunResult short_verbose = Cli({"job", "status", "-v", id});
  // The same lines (relative hints such as "in 59m" may tick between the two).
  EXPECT_EQ(std::count(short_verbose.out.begin(), short_verbose.out.end(), '\n'),
            std::count(verbose.out.begin(), verbose.out.end(), '\n'));

  RunResult list = Cli({"job", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(Contains(list.out, id)) << list.out;

  RunResult del = Cli({"job", "delete", id});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_TRUE(Contains(del.out, "deleted")) << del.out;  // The final state.
  EXPECT_TRUE(Contains(del.out, "Last result:  SUCCEEDED (run 1)")) << del.out;

  EXPECT_EQ(Cli({"job", "status", id}).exit_code, 3);
  RunResult after = Cli({"job", "status", "--show-deleted", id});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_TRUE(Contains(after.out, "deleted")) << after.out;
  EXPECT_EQ(Cli({"job", "list"}).out, "No jobs.\n");
  EXPECT_TRUE(Contains(Cli({"job", "list", "--show-deleted"}).out, id));
}

// ---- --start: a date, a date and time, an offset, the local zone ----

TEST_F(CliE2eTest, StartTimesInEveryFormAndTwoTimeZones) {
  auto daemon = StartTimerd();
  // A date alone is local midnight.
  EXPECT_EQ(StartUtc("UTC", "2026-12-01"), "2026-12-01T00:00:00Z");
  EXPECT_EQ(StartUtc("Asia/Tokyo", "2026-12-01"), "2026-11-30T15:00:00Z");
  // A local time: the same words give different instants under different TZ.
  EXPECT_EQ(StartUtc("America/Chicago", "2026-12-01T02:00"), "2026-12-01T08:00:00Z");
  EXPECT_EQ(StartUtc("Asia/Tokyo", "2026-12-01T02:00"), "2026-11-30T17:00:00Z");
  EXPECT_EQ(StartUtc("America/Chicago", "2026-12-01 02:00:00"), "2026-12-01T08:00:00Z");
  // The zone's rules, not a fixed offset: Chicago is UTC-5 in July.
  EXPECT_EQ(StartUtc("America/Chicago", "2030-07-01T02:00:00"), "2030-07-01T07:00:00Z");
  // An offset or Z wins over TZ.
  EXPECT_EQ(StartUtc("America/Chicago", "2026-12-01T02:00:00+05:30"),
            "2026-11-30T20:30:00Z");
  EXPECT_EQ(StartUtc("Asia/Tokyo", "2026-12-01T02:00:00-0500"), "2026-12-01T07:00:00Z");
  EXPECT_EQ(StartUtc("Asia/Tokyo", "2026-12-01T02:00:00Z"), "2026-12-01T02:00:00Z");

  // --stop-after-date takes the same forms.
  json job =
      CliJsonEnv({"TZ=Asia/Tokyo"}, {"job", "submit", "--interval", "1d", "--start-time",
                                     "2026-12-01", "--stop-after-date", "2027-01-01",
                                     "--action-provider", "noop", "--action-body", "{}"});
  EXPECT_EQ(job["schedule"]["start"], "2026-11-30T15:00:00Z");
  EXPECT_EQ(job["schedule"]["stop_after_date"], "2026-12-31T15:00:00Z");

  // Intervals with units.
  for (const auto& [text, seconds] :
       std::vector<std::pair<std::string, std::string>>{{"90s", "90"},
                                                        {"15m", "900"},
                                                        {"1h", "3600"},
                                                        {"1d", "86400"},
                                                        {"1w", "604800"},
                                                        {"28800", "28800"}}) {
    json j = CliJson({"job", "submit", "--interval", text, "--start", "2030-01-01",
                      "--action-provider", "noop", "--action-body", "{}"});
    EXPECT_EQ(j["schedule"]["interval_seconds"], seconds) << text;
  }

  // Bad times name their option.
  for (const auto& [option, value] : std::vector<std::pair<std::string, std::string>>{
           {"--start", "2026-13-01"},
           {"--start", "12/01/2026"},
           {"--start", "2026-12-01T25:00"},
           {"--stop-after-date", "tomorrow"}}) {
    RunResult r =
        CliEnv({"TZ=UTC"}, {"job", "submit", "--interval", "1d", option, value,
                            "--action-provider", "noop", "--action-body", "{}"});
    EXPECT_EQ(r.exit_code, 2) << value << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, option + ": ")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace timer::testing
