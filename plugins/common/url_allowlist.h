// url_allowlist: which HTTP destinations an operator allows outgoing
// requests to reach, and the address rules that keep a request made on a
// user's behalf from reaching the operator's own network (server-side request
// forgery). Shared by the http action provider and timerd's notifier; it
// knows nothing of either.
//
// An allowlist is a list of entries, each one of
//   https://api.example.org/v1/   a URL prefix: scheme, host, port (the
//                                 scheme's default when not written) and a
//                                 path prefix must all match
//   api.example.org               a host, any port, http or https
//   api.example.org:8443          a host and a port
//   *.example.org                 any name under example.org (not itself)
//   *                             any host name or address
//   203.0.113.7, [2001:db8::1]:80 an address (with or without a port)
//   10.1.0.0/16, fd00::/8         a range of addresses (CIDR)
// A URL is allowed when some entry matches it. Independently of names, every
// address a request connects to is checked: an address in a special range
// (loopback, private, link-local, unique-local, multicast, CGNAT, "this
// network" 0.0.0.0/8, documentation and benchmark ranges, IPv4-mapped and
// -compatible IPv6, NAT64) is refused unless an address or CIDR entry covers
// it. A host name in an entry never unlocks a special address, so a name
// whose DNS answer changes (DNS rebinding) cannot lead into the operator's
// network. The connect-time check (AddressAllowed) must run on the address
// actually connected to: with libcurl, from CURLOPT_OPENSOCKETFUNCTION.
//
// Thread-safety: an UrlAllowlist is immutable after Parse and may be used
// from any number of threads. Plain functions are thread-safe.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace timer::net {

// A parsed http(s) URL.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case; an IPv6 address without brackets
  int port = 0;        // explicit or the scheme's default
  std::string path;    // starts with "/"
  bool host_is_address = false;
  // scheme://host[:port]/path, without query, fragment or user info: safe to
  // log (a query string may hold a token).
  std::string Redacted() const;
};

// Parses `text` as an absolute http or https URL. Refuses other schemes,
// user info (user:password@), an empty host and lengths over 2048 bytes.
// On failure returns false and sets *error (without the URL's query).
bool ParseUrl(std::string_view text, Url* out, std::string* error);

// Resolves `location` (a Location header, absolute or relative) against
// `base`; false when it is not a valid http(s) URL.
bool ResolveUrl(std::string_view base, std::string_view location, std::string* out);

// An IPv4 or IPv6 address, in network byte order (IPv4 in the first 4 bytes).
struct Address {
  bool v6 = false;
  uint8_t bytes[16] = {};
};
bool ParseAddress(std::string_view text, Address* out);
bool FromSockaddr(const struct sockaddr* sa, Address* out, int* port);
std::string ToString(const Address& a);

// True if `a` is in a special range (see the header comment): loopback,
// private, CGNAT, link-local, unique-local, multicast, reserved, mapped...
bool IsSpecialAddress(const Address& a);

class UrlAllowlist {
 public:
  // Parses the entries; on a bad one returns false with *error naming it as
  // `<field>[i]`.
  static bool Parse(const std::vector<std::string>& entries, std::string_view field,
                    UrlAllowlist* out, std::string* error);

  bool empty() const { return entries_.empty(); }
  // The entries as configured (for describe()).
  const std::vector<std::string>& entries() const { return texts_; }

  // Is `url` allowed, before any address is known? A URL whose host is an
  // address must also pass AddressAllowed.
  bool UrlAllowed(const Url& url) const;
  // May a connection to `addr`:`port` be made? Public addresses: yes; special
  // ones only when an address or CIDR entry (with a matching port, if it
  // names one) covers them.
  bool AddressAllowed(const Address& addr, int port) const;

 private:
  struct Entry {
    enum Kind { kAny, kName, kSuffix, kAddress } kind = kAny;
    std::string scheme;       // empty: http or https
    std::string name;         // kName; kSuffix: ".example.org"
    Address addr;             // kAddress
    int prefix_bits = 0;      // kAddress: 32 / 128 for one address
    int port = 0;             // 0: any
    std::string path_prefix;  // empty: any
  };
  static bool ParseEntry(std::string_view text, Entry* e, std::string* why);
  static bool Covers(const Entry& e, const Address& a);
  bool Matches(const Entry& e, const Url& url) const;

  std::vector<Entry> entries_;
  std::vector<std::string> texts_;
};

}  // namespace timer::net
