// url_allowlist (plugins/common/url_allowlist.h): URL parsing, entry
// matching and the special-address rules, without any network.
#include "url_allowlist.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace timer::net {
namespace {

UrlAllowlist List(std::vector<std::string> entries) {
  UrlAllowlist l;
  std::string why;
  EXPECT_TRUE(UrlAllowlist::Parse(entries, "allow", &l, &why)) << why;
  return l;
}

bool Allowed(const UrlAllowlist& l, const std::string& text) {
  Url u;
  std::string why;
  if (!ParseUrl(text, &u, &why)) return false;
  return l.UrlAllowed(u);
}

Address Addr(const std::string& text) {
  Address a;
  EXPECT_TRUE(ParseAddress(text, &a)) << text;
  return a;
}

TEST(UrlAllowlistTest, ParsesAndRedactsUrls) {
  Url u;
  std::string why;
  ASSERT_TRUE(ParseUrl("HTTPS://Api.Example.ORG./v1/x?token=secret#f", &u, &why)) << why;
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.host, "api.example.org");
  EXPECT_EQ(u.port, 443);
  EXPECT_EQ(u.path, "/v1/x");
  EXPECT_EQ(u.Redacted(), "https://api.example.org/v1/x");
  ASSERT_TRUE(ParseUrl("http://[::1]:8080", &u, &why));
  EXPECT_EQ(u.host, "::1");
  EXPECT_TRUE(u.host_is_address);
  EXPECT_EQ(u.Redacted(), "http://[::1]:8080/");
  EXPECT_FALSE(ParseUrl("ftp://example.org/", &u, &why));
  EXPECT_FALSE(ParseUrl("file:///etc/passwd", &u, &why));
  EXPECT_FALSE(ParseUrl("http://user:pw@example.org/", &u, &why));
  EXPECT_FALSE(ParseUrl("http://exa mple.org/", &u, &why));
  EXPECT_FALSE(ParseUrl("/relative", &u, &why));
  // Other IPv4 forms are normalized by libcurl's parser to the address
  // they mean (and then judged as that address), or refused.
  for (const char* odd : {"http://2130706433/", "http://0x7f.0.0.1/", "http://0177.1/"}) {
    if (ParseUrl(odd, &u, &why)) {
      EXPECT_TRUE(u.host_is_address) << odd;
      EXPECT_EQ(u.host, "127.0.0.1") << odd;
    }
  }
  EXPECT_FALSE(ParseUrl("http://" + std::string(3000, 'a') + ".org/", &u, &why));
}

TEST(UrlAllowlistTest, EntriesMatchAsDocumented) {
  UrlAllowlist l = List({"https://api.example.org/v1/", "hooks.example.com",
                         "status.example.net:8443", "*.partner.example"});
  EXPECT_TRUE(Allowed(l, "https://api.example.org/v1/ping"));
  EXPECT_FALSE(Allowed(l, "https://api.example.org/v2/ping"));
  EXPECT_FALSE(Allowed(l, "http://api.example.org/v1/ping"));
  EXPECT_FALSE(Allowed(l, "https://api.example.org:444/v1/ping"));
  EXPECT_TRUE(Allowed(l, "http://hooks.example.com:9000/x"));
  EXPECT_FALSE(Allowed(l, "https://evilhooks.example.com/"));
  EXPECT_TRUE(Allowed(l, "https://status.example.net:8443/"));
  EXPECT_FALSE(Allowed(l, "https://status.example.net/"));
  EXPECT_TRUE(Allowed(l, "https://a.b.partner.example/"));
  EXPECT_FALSE(Allowed(l, "https://partner.example/"));
  EXPECT_FALSE(Allowed(l, "https://partner.example.evil.org/"));
}

TEST(UrlAllowlistTest, SpecialAddressesOnlyByAddressEntries) {
  UrlAllowlist any = List({"*"});
  EXPECT_TRUE(Allowed(any, "https://93.184.216.34/"));
  for (const char* u :
       {"http://127.0.0.1/", "http://10.0.0.1/", "http://172.31.255.255/",
        "http://192.168.1.1/", "http://169.254.169.254/", "http://100.64.0.1/",
        "http://0.0.0.0/", "http://224.0.0.251/", "http://255.255.255.255/",
        "http://[::1]/", "http://[::]/", "http://[fd12::1]/", "http://[fe80::1]/",
        "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[ff02::1]/"}) {
    EXPECT_FALSE(Allowed(any, u)) << u;
  }
  // Names: allowed by "*" before DNS, checked again on the address.
  EXPECT_TRUE(Allowed(any, "http://localhost/"));
  EXPECT_FALSE(any.AddressAllowed(Addr("127.0.0.1"), 80));
  EXPECT_TRUE(any.AddressAllowed(Addr("93.184.216.34"), 80));
  EXPECT_TRUE(any.AddressAllowed(Addr("2606:2800:220:1::1"), 443));

  UrlAllowlist listed = List({"127.0.0.1:8080", "10.1.0.0/16", "[fd00::1]"});
  EXPECT_TRUE(Allowed(listed, "http://127.0.0.1:8080/"));
  EXPECT_FALSE(Allowed(listed, "http://127.0.0.1:8081/"));
  EXPECT_TRUE(Allowed(listed, "http://10.1.200.3/"));
  EXPECT_FALSE(Allowed(listed, "http://10.2.0.1/"));
  EXPECT_TRUE(Allowed(listed, "http://[fd00::1]:9/"));
  EXPECT_TRUE(listed.AddressAllowed(Addr("127.0.0.1"), 8080));
  EXPECT_FALSE(listed.AddressAllowed(Addr("127.0.0.1"), 22));
  // A name entry never unlocks a special address.
  UrlAllowlist name = List({"internal.example"});
  EXPECT_TRUE(Allowed(name, "http://internal.example/"));
  EXPECT_FALSE(name.AddressAllowed(Addr("10.0.0.5"), 80));
}

TEST(UrlAllowlistTest, BadEntriesNamed) {
  UrlAllowlist l;
  std::string why;
  EXPECT_FALSE(UrlAllowlist::Parse({"ok.example", "10.0.0.0/33"}, "x.allow", &l, &why));
  EXPECT_EQ(why.rfind("x.allow[1]: ", 0), 0u) << why;
  EXPECT_FALSE(UrlAllowlist::Parse({"host:99999"}, "x.allow", &l, &why));
  EXPECT_FALSE(UrlAllowlist::Parse({"ftp://x/"}, "x.allow", &l, &why));
  EXPECT_FALSE(UrlAllowlist::Parse({""}, "x.allow", &l, &why));
  EXPECT_FALSE(UrlAllowlist::Parse({"a b"}, "x.allow", &l, &why));
}

TEST(UrlAllowlistTest, ResolvesRedirectLocations) {
  std::string out;
  ASSERT_TRUE(ResolveUrl("https://a.example/x/y", "/z?q=1", &out));
  EXPECT_EQ(out, "https://a.example/z?q=1");
  ASSERT_TRUE(ResolveUrl("https://a.example/x/y", "http://b.example/", &out));
  EXPECT_EQ(out, "http://b.example/");
}

}  // namespace
}  // namespace timer::net
