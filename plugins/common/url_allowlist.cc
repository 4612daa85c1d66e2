#include "url_allowlist.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

namespace timer::net {
namespace {

constexpr size_t kMaxUrl = 2048;

std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

// One part of a parsed CURLU, or "" when absent.
std::string Part(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, flags) != CURLUE_OK || v == nullptr) return "";
  std::string r(v);
  curl_free(v);
  return r;
}

bool InPrefix(const Address& a, const Address& net, int bits) {
  if (a.v6 != net.v6) return false;
  int full = bits / 8;
  if (std::memcmp(a.bytes, net.bytes, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (net.bytes[full] & mask);
}

struct Range {
  const char* net;
  int bits;
};
// IANA special-purpose registries (RFC 6890 and successors), plus multicast
// and the IPv6 forms that embed an IPv4 address (a way around a v4 check).
constexpr Range kSpecial[] = {
    {"0.0.0.0", 8},      {"10.0.0.0", 8},     {"100.64.0.0", 10}, {"127.0.0.0", 8},
    {"169.254.0.0", 16}, {"172.16.0.0", 12},  {"192.0.0.0", 24},  {"192.0.2.0", 24},
    {"192.88.99.0", 24}, {"192.168.0.0", 16}, {"198.18.0.0", 15}, {"198.51.100.0", 24},
    {"203.0.113.0", 24}, {"224.0.0.0", 4},    {"240.0.0.0", 4},   {"::", 128},
    {"::1", 128},        {"::ffff:0:0", 96},  {"::", 96},         {"64:ff9b::", 96},
    {"64:ff9b:1::", 48}, {"100::", 64},       {"2001::", 23},     {"2001:db8::", 32},
    {"2002::", 16},      {"fc00::", 7},       {"fe80::", 10},     {"fec0::", 10},
    {"ff00::", 8},
};

}  // namespace

std::string Url::Redacted() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port =
      (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  return scheme + "://" + h + (default_port ? "" : ":" + std::to_string(port)) + path;
}

bool ParseUrl(std::string_view text, Url* out, std::string* error) {
  if (text.size() > kMaxUrl) {
    *error = "longer than 2048 bytes";
    return false;
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      *error = "must not hold spaces or control characters";
      return false;
    }
  }
  UrlHandle u(curl_url());
  if (!u) {
    *error = "out of memory";
    return false;
  }
  std::string s(text);
  if (curl_url_set(u.get(), CURLUPART_URL, s.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    *error = "not a valid absolute URL";
    return false;
  }
  Url r;
  r.scheme = Lower(Part(u.get(), CURLUPART_SCHEME));
  if (r.scheme != "http" && r.scheme != "https") {
    *error = "scheme must be http or https";
    return false;
  }
  if (!Part(u.get(), CURLUPART_USER).empty() ||
      !Part(u.get(), CURLUPART_PASSWORD).empty()) {
    *error = "must not hold user info (user:password@); use a credential";
    return false;
  }
  std::string host = Lower(Part(u.get(), CURLUPART_HOST));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    size_t zone = host.find('%');
    if (zone != std::string::npos) {
      *error = "an IPv6 zone id is not allowed";
      return false;
    }
  }
  if (host.empty()) {
    *error = "has no host";
    return false;
  }
  // A trailing dot names the same host; matching must not be fooled by it.
  while (!host.empty() && host.back() == '.') host.pop_back();
  r.host = host;
  Address a;
  r.host_is_address = ParseAddress(host, &a);
  if (!r.host_is_address) {
    // curl accepts forms such as "2130706433" or "0x7f.1" and resolves them
    // as IPv4 addresses: refuse any all-numeric (or hex-looking) last label.
    size_t dot = host.rfind('.');
    std::string last = dot == std::string::npos ? host : host.substr(dot + 1);
    bool numeric =
        !last.empty() && (std::isdigit(static_cast<unsigned char>(last[0])) ||
                          (last.size() > 1 && last[0] == '0' && last[1] == 'x'));
    if (numeric) {
      *error = "host looks like an address in a form other than dotted decimal";
      return false;
    }
  }
  std::string port = Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  r.port = port.empty() ? 0 : std::atoi(port.c_str());
  if (r.port <= 0 || r.port > 65535) {
    *error = "bad port";
    return false;
  }
  r.path = Part(u.get(), CURLUPART_PATH);
  if (r.path.empty() || r.path[0] != '/') r.path = "/" + r.path;
  *out = std::move(r);
  return true;
}

bool ResolveUrl(std::string_view base, std::string_view location, std::string* out) {
  UrlHandle u(curl_url());
  if (!u) return false;
  std::string b(base), l(location);
  if (curl_url_set(u.get(), CURLUPART_URL, b.c_str(), 0) != CURLUE_OK) return false;
  if (curl_url_set(u.get(), CURLUPART_URL, l.c_str(), CURLU_NON_SUPPORT_SCHEME) !=
      CURLUE_OK) {
    return false;
  }
  std::string r = Part(u.get(), CURLUPART_URL);
  if (r.empty()) return false;
  *out = std::move(r);
  return true;
}

bool ParseAddress(std::string_view text, Address* out) {
  std::string s(text);
  Address a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes) == 1) {
    a.v6 = false;
  } else if (inet_pton(AF_INET6, s.c_str(), a.bytes) == 1) {
    a.v6 = true;
  } else {
    return false;
  }
  *out = a;
  return true;
}

bool FromSockaddr(const struct sockaddr* sa, Address* out, int* port) {
  Address a;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(a.bytes, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    a.v6 = true;
    std::memcpy(a.bytes, &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *out = a;
  return true;
}

std::string ToString(const Address& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.bytes, buf, sizeof(buf));
  return buf;
}

bool IsSpecialAddress(const Address& a) {
  for (const Range& r : kSpecial) {
    Address net;
    ParseAddress(r.net, &net);
    if (InPrefix(a, net, r.bits)) return true;
  }
  // 255.255.255.255 is inside 240.0.0.0/4 already.
  return false;
}

bool UrlAllowlist::ParseEntry(std::string_view text, Entry* e, std::string* why) {
  std::string t = Lower(text);
  if (t.empty()) {
    *why = "empty";
    return false;
  }
  if (t.find("://") != std::string::npos) {
    Url u;
    if (!ParseUrl(t, &u, why)) return false;
    e->scheme = u.scheme;
    e->port = u.port;
    e->path_prefix = u.path;
    Address a;
    if (ParseAddress(u.host, &a)) {
      e->kind = Entry::kAddress;
      e->addr = a;
      e->prefix_bits = a.v6 ? 128 : 32;
    } else if (u.host.rfind("*.", 0) == 0) {
      e->kind = Entry::kSuffix;
      e->name = u.host.substr(1);
    } else {
      e->kind = Entry::kName;
      e->name = u.host;
    }
    return true;
  }
  // host, host:port, [v6]:port, v6, address/bits, *, *.suffix
  std::string host = t;
  std::string port;
  if (t.front() == '[') {
    size_t close = t.find(']');
    if (close == std::string::npos) {
      *why = "unclosed [";
      return false;
    }
    host = t.substr(1, close - 1);
    std::string rest = t.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        *why = "expected :port after ]";
        return false;
      }
      port = rest.substr(1);
    }
  } else if (std::count(t.begin(), t.end(), ':') == 1) {
    size_t colon = t.find(':');
    host = t.substr(0, colon);
    port = t.substr(colon + 1);
  }
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
      *why = "bad port";
      return false;
    }
    e->port = std::atoi(port.c_str());
    if (e->port <= 0 || e->port > 65535) {
      *why = "bad port";
      return false;
    }
  }
  size_t slash = host.find('/');
  if (slash != std::string::npos) {
    std::string bits = host.substr(slash + 1);
    host = host.substr(0, slash);
    if (!ParseAddress(host, &e->addr)) {
      *why = "a CIDR range needs an address before /";
      return false;
    }
    int max = e->addr.v6 ? 128 : 32;
    if (bits.empty() || bits.size() > 3 ||
        !std::all_of(bits.begin(), bits.end(), ::isdigit) ||
        std::atoi(bits.c_str()) > max) {
      *why = "bad prefix length";
      return false;
    }
    e->kind = Entry::kAddress;
    e->prefix_bits = std::atoi(bits.c_str());
    return true;
  }
  if (ParseAddress(host, &e->addr)) {
    e->kind = Entry::kAddress;
    e->prefix_bits = e->addr.v6 ? 128 : 32;
    return true;
  }
  if (host == "*") {
    e->kind = Entry::kAny;
    return true;
  }
  if (host.rfind("*.", 0) == 0 && host.size() > 2) {
    e->kind = Entry::kSuffix;
    e->name = host.substr(1);
    return true;
  }
  for (char c : host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
          c == '_')) {
      *why = "not a host name, address, CIDR range or URL";
      return false;
    }
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  e->kind = Entry::kName;
  e->name = host;
  return true;
}

bool UrlAllowlist::Parse(const std::vector<std::string>& entries, std::string_view field,
                         UrlAllowlist* out, std::string* error) {
  UrlAllowlist r;
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry e;
    std::string why;
    if (!ParseEntry(entries[i], &e, &why)) {
      *error = std::string(field) + "[" + std::to_string(i) + "]: " + why;
      return false;
    }
    r.entries_.push_back(std::move(e));
    r.texts_.push_back(entries[i]);
  }
  *out = std::move(r);
  return true;
}

bool UrlAllowlist::Covers(const Entry& e, const Address& a) {
  return e.kind == Entry::kAddress && InPrefix(a, e.addr, e.prefix_bits);
}

bool UrlAllowlist::Matches(const Entry& e, const Url& url) const {
  if (!e.scheme.empty() && e.scheme != url.scheme) return false;
  if (e.port != 0 && e.port != url.port) return false;
  if (!e.path_prefix.empty() &&
      url.path.compare(0, e.path_prefix.size(), e.path_prefix) != 0) {
    return false;
  }
  switch (e.kind) {
    case Entry::kAny:
      return true;
    case Entry::kName:
      return !url.host_is_address && url.host == e.name;
    case Entry::kSuffix:
      return !url.host_is_address && url.host.size() > e.name.size() &&
             url.host.compare(url.host.size() - e.name.size(), e.name.size(), e.name) ==
                 0;
    case Entry::kAddress: {
      Address a;
      return url.host_is_address && ParseAddress(url.host, &a) && Covers(e, a);
    }
  }
  return false;
}

bool UrlAllowlist::UrlAllowed(const Url& url) const {
  bool matched = false;
  for (const Entry& e : entries_) {
    if (Matches(e, url)) {
      matched = true;
      break;
    }
  }
  if (!matched) return false;
  if (url.host_is_address) {
    Address a;
    return ParseAddress(url.host, &a) && AddressAllowed(a, url.port);
  }
  return true;
}

bool UrlAllowlist::AddressAllowed(const Address& addr, int port) const {
  if (!IsSpecialAddress(addr)) return true;
  for (const Entry& e : entries_) {
    if (Covers(e, addr) && (e.port == 0 || e.port == port)) return true;
  }
  return false;
}

}  // namespace timer::net
