// Identity: who is calling. Every domain operation is scoped to one.
//
// timerd resolves it from each call's credentials (auth/authenticator.h);
// LocalIdentity() is a fixed one for tests of the layers below the API.
// A plain value type; copy freely.
#pragma once

#include <string>

namespace timer::domain {

struct Identity {
  // The owner name jobs are stored under, e.g. "alice@example.org".
  std::string name;
  // How it was established: "token", "jwt" or "mtls" ("none" in tests;
  // empty when the run engine acts for a job's owner).
  std::string auth_method;
};

inline Identity LocalIdentity() { return Identity{"local", "none"}; }

}  // namespace timer::domain
