// Identifiers and fingerprints. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace timer::domain {

// A random (version 4) UUID in canonical lowercase form, from OpenSSL's CSPRNG.
std::string NewUuid();

// True for a canonical UUID: 8-4-4-4-12 hex digits, either case.
bool IsUuid(std::string_view s);

// Lowercase hex SHA-256 of `data`: a stable fingerprint across restarts.
std::string Sha256Hex(std::string_view data);

}  // namespace timer::domain
