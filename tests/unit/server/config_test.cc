// Tests of timerd's configuration (server/config.h): TOML parsing into
// Config, strictness about unknown keys and types, the listen-address check
// that keeps plaintext gRPC on loopback, and the table of keys (ConfigKeys)
// with the range of each, the sample and the reference made from it.

#include "server/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "other_user.h"

namespace timer::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status status = [&] {
    if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
      return arg;
    } else {
      return arg.status();
    }
  }();
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

MATCHER(IsOk, "is OK") {
  if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
    *result_listener << "whose status is " << arg;
  } else {
    *result_listener << "whose status is " << arg.status();
  }
  return arg.ok();
}

constexpr char kOrigin[] = "timerd.toml";

// The example from server/config.h, verbatim.
constexpr char kHeaderExample[] = R"toml(
listen = "127.0.0.1:50051"
data_dir = "/var/lib/timer"
plugin_dir = "/usr/local/lib/timer/plugins"
log_level = "info"               # trace, debug, info, warn, error
allow_insecure_remote = false    # plaintext on a non-loopback address
[plugins.noop]                   # each table is handed to that provider
record_file = "/tmp/noop-runs.log"
)toml";

TEST(ParseConfigTest, TheHeaderExampleParses) {
  absl::StatusOr<Config> config = ParseConfig(kHeaderExample, kOrigin);

  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen, "127.0.0.1:50051");
  EXPECT_EQ(config->data_dir, "/var/lib/timer");
  EXPECT_EQ(config->plugin_dir, "/usr/local/lib/timer/plugins");
  EXPECT_EQ(config->log_level, "info");
  EXPECT_FALSE(config->allow_insecure_remote);
  EXPECT_EQ(config->plugins,
            nlohmann::json::parse(R"({"noop": {"record_file": "/tmp/noop-runs.log"}})"));
}

TEST(ParseConfigTest, EmptyTextGivesTheDefaults) {
  absl::StatusOr<Config> config = ParseConfig("", kOrigin);

  ASSERT_THAT(config, IsOk());
  const Config defaults;
  EXPECT_EQ(config->listen, defaults.listen);
  EXPECT_EQ(config->listen, "127.0.0.1:50051");
  EXPECT_EQ(config->data_dir, "");
  EXPECT_EQ(config->plugin_dir, "");
  EXPECT_EQ(config->log_level, "info");
  EXPECT_FALSE(config->allow_insecure_remote);
  EXPECT_TRUE(config->plugins.is_object());
  EXPECT_TRUE(config->plugins.empty());
}

TEST(ParseConfigTest, WatchLimitsParseAndAreBounded) {
  absl::StatusOr<Config> config =
      ParseConfig("watch_keep_events = 500\nwatch_buffer_events = 16\n", kOrigin);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->watch_keep_events, 500);
  EXPECT_EQ(config->watch_buffer_events, 16);
  EXPECT_EQ(Config().watch_buffer_events, 1024);

  for (const char* bad : {"watch_buffer_events = 0", "watch_keep_events = -3",
                          "watch_keep_events = \"many\""}) {
    absl::StatusOr<Config> refused = ParseConfig(bad, kOrigin);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("watch_"));
  }
}

// Issue 18 (H1, H7): the event log's byte bound, the stream bounds and the
// list page bound are keys with safe defaults.
TEST(ParseConfigTest, WatchAndListBoundsParseAndHaveSafeDefaults) {
  absl::StatusOr<Config> config = ParseConfig(
      "watch_keep_bytes = 1048576\nmax_watch_streams = 100\n"
      "max_watch_streams_per_identity = 8\nmax_list_page_bytes = 65536\n",
      kOrigin);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->watch_keep_bytes, 1 << 20);
  EXPECT_EQ(config->max_watch_streams, 100);
  EXPECT_EQ(config->max_watch_streams_per_identity, 8);
  EXPECT_EQ(config->max_list_page_bytes, 65536);
  const Config defaults;
  EXPECT_EQ(defaults.watch_keep_bytes, 32 << 20);
  EXPECT_EQ(defaults.max_watch_streams, 10000);
  EXPECT_EQ(defaults.max_watch_streams_per_identity, 64);
  EXPECT_EQ(defaults.max_list_page_bytes, 1 << 20);

  for (const char* bad :
       {"watch_keep_bytes = 0", "max_watch_streams = 0",
        "max_watch_streams_per_identity = -1", "max_list_page_bytes = 10"}) {
    absl::StatusOr<Config> refused = ParseConfig(bad, kOrigin);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_THAT(
        std::string(refused.status().message()),
        ::testing::HasSubstr(std::string(bad).substr(0, std::string(bad).find(' '))));
  }
}

TEST(ParseConfigTest, AllowInsecureRemoteTrue) {
  absl::StatusOr<Config> config =
      ParseConfig("listen = \"0.0.0.0:50051\"\nallow_insecure_remote = true\n", kOrigin);

  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen, "0.0.0.0:50051");
  EXPECT_TRUE(config->allow_insecure_remote);
}

TEST(ParseConfigTest, PluginTablesArriveAsJson) {
  absl::StatusOr<Config> config = ParseConfig(R"toml(
[plugins.noop]
record_file = "/tmp/noop.log"
delay_ms = 25
fail = false

[plugins.transfer]
base_url = "https://transfer.example.org"

[[plugins.transfer.endpoints]]
name = "east"
port = 443

[[plugins.transfer.endpoints]]
name = "west"
tags = ["a", "b"]
)toml",
                                              kOrigin);

  ASSERT_THAT(config, IsOk());
  const nlohmann::json& plugins = config->plugins;
  ASSERT_TRUE(plugins.is_object());
  ASSERT_TRUE(plugins.contains("noop"));
  const nlohmann::json& noop = plugins["noop"];
  ASSERT_TRUE(noop.is_object());
  EXPECT_EQ(noop["record_file"], "/tmp/noop.log");
  EXPECT_TRUE(noop["delay_ms"].is_number_integer());
  EXPECT_EQ(noop["delay_ms"], 25);
  EXPECT_TRUE(noop["fail"].is_boolean());
  EXPECT_EQ(noop["fail"], false);

  ASSERT_TRUE(plugins.contains("transfer"));
  const nlohmann::json& transfer = plugins["transfer"];
  ASSERT_TRUE(transfer.is_object());
  EXPECT_EQ(transfer["base_url"], "https://transfer.example.org");
  const nlohmann::json& endpoints = transfer["endpoints"];
  ASSERT_TRUE(endpoints.is_array());
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_TRUE(endpoints[0].is_object());
  EXPECT_EQ(endpoints[0], nlohmann::json::parse(R"({"name": "east", "port": 443})"));
  EXPECT_EQ(endpoints[1],
            nlohmann::json::parse(R"({"name": "west", "tags": ["a", "b"]})"));
}

TEST(ParseConfigTest, PluginWithOnlyAnArrayOfTables) {
  absl::StatusOr<Config> config = ParseConfig(R"toml(
[[plugins.transfer.endpoints]]
name = "only"
)toml",
                                              kOrigin);

  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->plugins,
            nlohmann::json::parse(R"({"transfer": {"endpoints": [{"name": "only"}]}})"));
}

TEST(ParseConfigTest, AnUnknownKeyIsAnErrorNamingIt) {
  EXPECT_THAT(ParseConfig("lisen = \"127.0.0.1:1\"\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("lisen"), HasSubstr(kOrigin))));
  EXPECT_THAT(ParseConfig("[server]\nport = 1\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("server")));
}

TEST(ParseConfigTest, AcceptsEachDocumentedLogLevel) {
  for (const char* level : {"trace", "debug", "info", "warn", "error"}) {
    absl::StatusOr<Config> config =
        ParseConfig(absl::StrCat("log_level = \"", level, "\"\n"), kOrigin);
    ASSERT_THAT(config, IsOk()) << level;
    EXPECT_EQ(config->log_level, level);
  }
}

TEST(ParseConfigTest, AMisspelledLogLevelIsAnError) {
  // The header allows trace, debug, info, warn and error, and a typo must not
  // silently fall back to something else (spdlog maps unknown names to "off").
  EXPECT_THAT(ParseConfig("log_level = \"inof\"\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("log_level"), HasSubstr(kOrigin))));
}

struct WrongType {
  std::string test_name;
  std::string toml;
  std::string key;  // Must appear in the error message.
};

// Keeps gtest (and ctest's test names) from dumping the struct's bytes.
void PrintTo(const WrongType& w, std::ostream* os) { *os << w.test_name; }

class WrongTypeTest : public ::testing::TestWithParam<WrongType> {};

TEST_P(WrongTypeTest, IsAnErrorNamingTheKey) {
  EXPECT_THAT(ParseConfig(GetParam().toml, kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(GetParam().key), HasSubstr(kOrigin))));
}

INSTANTIATE_TEST_SUITE_P(
    Keys, WrongTypeTest,
    ::testing::ValuesIn(std::vector<WrongType>{
        {"ListenNumber", "listen = 50051\n", "listen"},
        {"DataDirBool", "data_dir = true\n", "data_dir"},
        {"PluginDirArray", "plugin_dir = [\"a\"]\n", "plugin_dir"},
        {"LogLevelNumber", "log_level = 3\n", "log_level"},
        {"AllowInsecureRemoteString", "allow_insecure_remote = \"yes\"\n",
         "allow_insecure_remote"},
        {"PluginsString", "plugins = \"noop\"\n", "plugins"},
        {"PluginNotATable", "[plugins]\nnoop = 1\n", "plugins.noop"},
    }),
    [](const ::testing::TestParamInfo<WrongType>& info) { return info.param.test_name; });

TEST(ParseConfigTest, ASyntaxErrorReportsItsLine) {
  absl::StatusOr<Config> config = ParseConfig(
      "listen = \"127.0.0.1:1\"\n"
      "log_level = \"info\n"  // Unterminated string on line 2.
      "data_dir = \"/tmp\"\n",
      kOrigin);

  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr(kOrigin), HasSubstr(":2:"))));
}

TEST(ParseConfigTest, ASyntaxErrorOnALaterLineReportsThatLine) {
  absl::StatusOr<Config> config =
      ParseConfig("listen = \"127.0.0.1:1\"\n\n\n\nlog_level = = \"info\"\n", kOrigin);

  EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(":5:")));
}

TEST(LoadConfigFileTest, ReadsAFile) {
  std::string dir = ::testing::TempDir() + "timerd_config_test.XXXXXX";
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/timerd.toml";
  {
    std::ofstream out(path);
    out << "listen = \"localhost:7000\"\nlog_level = \"debug\"\n";
  }

  absl::StatusOr<Config> config = LoadConfigFile(path);
  absl::StatusOr<Config> missing = LoadConfigFile(dir + "/absent.toml");
  {
    std::ofstream out(path);
    out << "bogus = 1\n";
  }
  absl::StatusOr<Config> bad = LoadConfigFile(path);
  std::filesystem::remove_all(dir);

  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->listen, "localhost:7000");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.toml")));
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr(path), HasSubstr("bogus"))));
}

// ---------------------------------------------------------------------------
// ValidateListenAddress.

TEST(ValidateListenAddressTest, AcceptsLoopbackAddresses) {
  for (const char* listen : {"127.0.0.1:0", "127.0.0.1:50051", "127.1.2.3:80", "[::1]:5",
                             "localhost:1", "localhost:65535"}) {
    EXPECT_THAT(ValidateListenAddress(listen, /*allow_insecure_remote=*/false), IsOk())
        << listen;
  }
}

TEST(ValidateListenAddressTest, AcceptsUnixSockets) {
  EXPECT_THAT(ValidateListenAddress("unix:/run/timer/timerd.sock", false), IsOk());
}

TEST(ValidateListenAddressTest, RefusesNonLoopbackUnlessAllowed) {
  for (const char* listen :
       {"0.0.0.0:50051", "[::]:50051", "192.168.1.10:50051", "example.org:443"}) {
    EXPECT_THAT(ValidateListenAddress(listen, /*allow_insecure_remote=*/false),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("listen"), HasSubstr("allow_insecure_remote"))))
        << listen;
    EXPECT_THAT(ValidateListenAddress(listen, /*allow_insecure_remote=*/true), IsOk())
        << listen;
  }
}

TEST(ValidateListenAddressTest, ErrorsNameTheSettingChecked) {
  EXPECT_THAT(
      ValidateListenAddress("0.0.0.0:8080", false, "http_listen"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               StartsWith("http_listen: 0.0.0.0:8080 is not a loopback address")));
  EXPECT_THAT(ValidateListenAddress("8080", false, "http_listen"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("http_listen: ")));
  EXPECT_THAT(ValidateListenAddress("127.0.0.1:8080", false, "http_listen"), IsOk());
}

TEST(ValidateListenAddressTest, RefusesHostNamesThatOnlyLookLikeLoopback) {
  // DNS names can start with "127." and resolve anywhere.
  EXPECT_THAT(ValidateListenAddress("127.0.0.1.nip.example:50051", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen")));
  EXPECT_THAT(ValidateListenAddress("localhost.example.org:50051", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen")));
}

TEST(ValidateListenAddressTest, RefusesMalformedAddressesEvenWhenRemoteIsAllowed) {
  for (const char* listen : {"nonsense", "", "localhost:", "localhost:http",
                             "localhost:65536", "localhost:-1"}) {
    for (bool allow : {false, true}) {
      EXPECT_THAT(ValidateListenAddress(listen, allow),
                  StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen")))
          << "\"" << listen << "\" allow_insecure_remote=" << allow;
    }
  }
}

TEST(ParseConfigTest, TlsLimitsAndJwtSettingsParse) {
  absl::StatusOr<Config> c = ParseConfig(R"(
tls_cert = "/etc/timer/server.crt"
tls_key = "/etc/timer/server.key"
tls_client_ca = "/etc/timer/ca.crt"
max_message_bytes = 65536
max_jobs_per_identity = 5
[auth.jwt]
keys_file = "/etc/timer/jwks.json"
issuer = "https://idp.example.org"
audience = "timer"
identity_claim = "email"
leeway_seconds = 30
)",
                                         "t.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls_cert, "/etc/timer/server.crt");
  EXPECT_EQ(c->tls_key, "/etc/timer/server.key");
  EXPECT_EQ(c->tls_client_ca, "/etc/timer/ca.crt");
  EXPECT_EQ(c->max_message_bytes, 65536);
  EXPECT_EQ(c->max_jobs_per_identity, 5);
  EXPECT_EQ(c->jwt_keys_file, "/etc/timer/jwks.json");
  EXPECT_EQ(c->jwt_issuer, "https://idp.example.org");
  EXPECT_EQ(c->jwt_audience, "timer");
  EXPECT_EQ(c->jwt_identity_claim, "email");
  EXPECT_EQ(c->jwt_leeway_seconds, 30);
  EXPECT_TRUE(ValidateConfig(*c).ok());
}

TEST(ParseConfigTest, UnknownAuthSettingsAndBadLimitsAreErrors) {
  EXPECT_THAT(
      ParseConfig("[auth.jwt]\nkeyfile = \"x\"\n", "t.toml"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("auth.jwt.keyfile")));
  EXPECT_THAT(ParseConfig("[auth.oauth]\n", "t.toml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("auth.oauth")));
  EXPECT_THAT(
      ParseConfig("max_jobs_per_identity = 0\n", "t.toml"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_jobs_per_identity")));
}

TEST(ValidateConfigTest, TheLeaseMarginMustBeBelowHalfTheTtl) {
  Config c;
  EXPECT_TRUE(ValidateConfig(c).ok());  // 3000 / 1000.
  c.lease_margin_ms = 1500;
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lease_margin_ms")));
  c.lease_ttl_ms = 3001;
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(ValidateConfigTest, TlsAndJwtSettingsMustBeComplete) {
  Config c;
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.tls_cert = "cert.pem";
  EXPECT_THAT(ValidateConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key")));
  c.tls_key = "key.pem";
  EXPECT_TRUE(ValidateConfig(c).ok());
  Config mtls_only;
  mtls_only.tls_client_ca = "ca.pem";
  EXPECT_THAT(ValidateConfig(mtls_only),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_client_ca")));
  Config jwt;
  jwt.jwt_keys_file = "jwks.json";
  jwt.jwt_issuer = "https://idp";
  EXPECT_THAT(ValidateConfig(jwt), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("auth.jwt.audience")));
  Config half;
  half.jwt_audience = "timer";
  EXPECT_THAT(ValidateConfig(half), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("auth.jwt.keys_file")));
}

// ---------------------------------------------------------------------------
// The table of keys (ConfigKeys) and what is generated from it.

// The key's value in `config`, as text, whatever its type.
std::string ValueOf(const ConfigKey& key, const Config& config) {
  return std::visit([&](auto member) { return ::testing::PrintToString(config.*member); },
                    key.field);
}

TEST(ConfigKeysTest, AreConsistent) {
  std::set<std::string> paths;
  bool tables_started = false;
  const Config defaults;
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string path(key.path);
    SCOPED_TRACE(path);
    EXPECT_TRUE(paths.insert(path).second) << "listed twice";
    EXPECT_FALSE(key.doc.empty());
    // Top-level keys first: SampleConfig writes them before any [table].
    const bool nested = path.find('.') != std::string::npos;
    if (nested) tables_started = true;
    EXPECT_FALSE(tables_started && !nested) << "a top-level key after a table's";
    if (std::holds_alternative<int Config::*>(key.field) ||
        std::holds_alternative<int64_t Config::*>(key.field)) {
      EXPECT_LE(key.min, key.max);
      if (std::holds_alternative<int Config::*>(key.field)) {
        EXPECT_LE(key.max, std::numeric_limits<int>::max()) << "does not fit the member";
      }
      const int64_t def = std::holds_alternative<int Config::*>(key.field)
                              ? defaults.*std::get<int Config::*>(key.field)
                              : defaults.*std::get<int64_t Config::*>(key.field);
      EXPECT_GE(def, key.min);
      EXPECT_LE(def, key.max);
    }
    if (!key.allowed.empty()) {
      const std::string& def = defaults.*std::get<std::string Config::*>(key.field);
      EXPECT_NE(std::find(key.allowed.begin(), key.allowed.end(), def),
                key.allowed.end());
    }
  }
  EXPECT_EQ(paths.count("plugins"), 0u) << "plugins tables are the providers'";
}

TEST(ConfigKeysTest, EveryIntegerKeyAcceptsItsRangeAndRefusesOutsideIt) {
  for (const ConfigKey& key : ConfigKeys()) {
    if (!std::holds_alternative<int Config::*>(key.field) &&
        !std::holds_alternative<int64_t Config::*>(key.field)) {
      continue;
    }
    const std::string path(key.path);
    const size_t dot = path.rfind('.');
    const std::string header =
        dot == std::string::npos ? "" : absl::StrCat("[", path.substr(0, dot), "]\n");
    const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    const auto toml = [&](auto value) {
      return absl::StrCat(header, name, " = ", value, "\n");
    };
    for (int64_t ok : {key.min, key.max}) {
      absl::StatusOr<Config> c = ParseConfig(toml(ok), kOrigin);
      ASSERT_THAT(c, IsOk()) << path << " = " << ok;
      EXPECT_EQ(ValueOf(key, *c), ::testing::PrintToString(ok)) << path;
    }
    const std::string range = absl::StrCat("from ", key.min, " to ", key.max);
    for (const std::string& bad : {absl::StrCat(key.min - 1), absl::StrCat(key.max + 1),
                                   std::string("\"9\""), std::string("1.5")}) {
      EXPECT_THAT(ParseConfig(toml(bad), kOrigin),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           AllOf(HasSubstr(kOrigin), HasSubstr(path), HasSubstr(range))))
          << path << " = " << bad;
    }
  }
}

TEST(ConfigKeysTest, EveryKeyRefusesAValueOfAnotherType) {
  for (const ConfigKey& key : ConfigKeys()) {
    const std::string path(key.path);
    const size_t dot = path.rfind('.');
    const std::string header =
        dot == std::string::npos ? "" : absl::StrCat("[", path.substr(0, dot), "]\n");
    const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    // An array is no key's type.
    EXPECT_THAT(
        ParseConfig(absl::StrCat(header, name, " = [1]\n"), kOrigin),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr(path), HasSubstr("must be"), HasSubstr("an array"))));
  }
}

TEST(ConfigKeysTest, ARefusedStringNamesTheAllowedValuesAndTheValue) {
  EXPECT_THAT(ParseConfig("log_level = \"inof\"\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("log_level: must be trace, debug, info, warn or error "
                                 "(got \"inof\")")));
}

TEST(ConfigKeysTest, AnUnknownKeySuggestsTheKnownOne) {
  EXPECT_THAT(
      ParseConfig("lisen = \"127.0.0.1:1\"\n", kOrigin),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("did you mean listen?")));
  EXPECT_THAT(
      ParseConfig("[auth.jwt]\nissuers = \"x\"\n", kOrigin),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("auth.jwt.issuers: unknown setting (did you mean issuer?)")));
  EXPECT_THAT(
      ParseConfig("[auth.oauth]\n", kOrigin),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("known in [auth]: jwt")));
  EXPECT_THAT(ParseConfig("[auth]\njwt = 1\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("auth.jwt: must be a table")));
}

TEST(ConfigKeysTest, TheSampleConfigParsesToTheDefaults) {
  const std::string sample = SampleConfig();
  absl::StatusOr<Config> config = ParseConfig(sample, "sample");
  ASSERT_THAT(config, IsOk()) << sample;
  const Config defaults;
  for (const ConfigKey& key : ConfigKeys()) {
    EXPECT_EQ(ValueOf(key, *config), ValueOf(key, defaults)) << key.path;
    EXPECT_THAT(sample, HasSubstr(std::string(key.doc))) << key.path;
  }
  EXPECT_TRUE(ValidateConfig(*config).ok());
}

TEST(ConfigKeysTest, TheReferenceHasARowPerKeyWithItsRange) {
  const std::string reference = ConfigReference();
  for (const ConfigKey& key : ConfigKeys()) {
    EXPECT_THAT(reference, HasSubstr(absl::StrCat("| `", key.path, "` |"))) << key.path;
    EXPECT_THAT(reference, HasSubstr(std::string(key.doc))) << key.path;
  }
  EXPECT_THAT(reference, HasSubstr("| `workers` | integer | `4` | 1 to 256 |"));
  EXPECT_THAT(reference, HasSubstr("`[plugins.NAME]`"));
}

// ---------------------------------------------------------------------------
// Which providers load, and the files timerd believes.

TEST(ParseConfigTest, LoadPluginsIsAListOfProviderNames) {
  EXPECT_EQ(Config().load_plugins, (std::vector<std::string>{"noop", "transfer"}));
  absl::StatusOr<Config> config = ParseConfig("load_plugins = [\"transfer\"]\n", kOrigin);
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->load_plugins, std::vector<std::string>{"transfer"});
  config = ParseConfig("load_plugins = []\n", kOrigin);
  ASSERT_THAT(config, IsOk());
  EXPECT_TRUE(config->load_plugins.empty());
  EXPECT_THAT(
      ParseConfig("load_plugins = \"noop\"\n", kOrigin),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("load_plugins: must be an array of strings (got \"noop\")")));
  EXPECT_THAT(ParseConfig("load_plugins = [\"noop\", 1]\n", kOrigin),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("load_plugins")));
}

TEST(PluginDirTest, IsThePluginDirElseTheOneNextToTimerd) {
  Config config;
  EXPECT_EQ(PluginDir(config), DefaultPluginDir());
  config.plugin_dir = "/opt/timer/plugins";
  EXPECT_EQ(PluginDir(config), "/opt/timer/plugins");
}

class ConfigFilesTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "config_trust.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string File(const std::string& name, int mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "x";
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigFilesTrustTest, EveryFileTheConfigNamesMustBeNoOtherUsersToWrite) {
  Config config;
  config.tls_cert = File("server.crt", 0644);
  config.tls_key = File("server.key", 0600);
  config.tls_client_ca = File("ca.crt", 0644);
  config.jwt_keys_file = File("jwks.json", 0644);
  const std::string config_path = File("timerd.toml", 0600);
  EXPECT_THAT(CheckConfigFilesTrusted(config, config_path, ::geteuid()), IsOk());
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"config file", config_path},
      {"tls_cert", config.tls_cert},
      {"tls_key", config.tls_key},
      {"tls_client_ca", config.tls_client_ca},
      {"auth.jwt.keys_file", config.jwt_keys_file}};
  for (const auto& [key, path] : keys) {
    ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
    EXPECT_THAT(
        CheckConfigFilesTrusted(config, config_path, ::geteuid()),
        StatusIs(absl::StatusCode::kPermissionDenied,
                 HasSubstr(absl::StrCat(key, ": ", path, ": writable by others"))));
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  }
  // A file that is not there is left to the code that reads it to report.
  config.tls_key = dir_ + "/missing.key";
  EXPECT_THAT(CheckConfigFilesTrusted(config, "", ::geteuid()), IsOk());
  if (timer::testing::CanGiveFilesAway()) {
    ASSERT_EQ(::chown(config.jwt_keys_file.c_str(), 65534, 65534), 0);
    EXPECT_THAT(CheckConfigFilesTrusted(config, "", ::geteuid()),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("auth.jwt.keys_file"),
                               HasSubstr("owned by uid 65534"))));
  }
}

}  // namespace
}  // namespace timer::server
