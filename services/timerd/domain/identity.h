// Identity: who is calling. Every domain operation is scoped to one.
//
// Until authentication is configured, every caller is the identity "local".
// A plain value type; copy freely.
#pragma once

#include <string>

namespace timer::domain {

struct Identity {
  // The owner name jobs are stored under, e.g. "alice@example.org".
  std::string name;
  // How it was established: "none", "token", "jwt" or "mtls".
  std::string auth_method;
};

inline Identity LocalIdentity() { return Identity{"local", "none"}; }

}  // namespace timer::domain
