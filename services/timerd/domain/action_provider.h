// ActionProvider: what the run engine calls to carry out one run of a job.
//
// The domain sees providers only through this interface. Plugins loaded with
// dlopen (plugin_host/) are wrapped behind it; tests use in-process fakes.
//
// Contract, for every implementation:
// - Every method is thread-safe and may be called concurrently, from the run
//   engine's worker threads (never from a gRPC or timer thread). Methods may
//   block for a short while (I/O to start an action), but long work belongs
//   to the provider's own threads and is observed through Status().
// - Start() is idempotent on `request_id` (the run's stable key,
//   "<job_id>/<run_number>"): a second Start() with the same key returns the
//   action the first one started and never starts a second one, until the
//   action is released. Providers loaded in timerd keep this memory in the
//   process only, so the run engine never re-starts a run after a restart
//   (it marks it UNKNOWN instead); an action a provider no longer knows is
//   NOT_FOUND from Status().
// - `details` is a JSON object (the plugin host substitutes {} for nothing).
// - Errors are absl::Status with the most specific code: INVALID_ARGUMENT
//   for a bad body (message naming the field, e.g. "transfer_items[0]
//   .source_path: ..."), PERMISSION_DENIED when the identity may not use a
//   resource, UNAVAILABLE for a transient failure worth retrying.
// - A failure carries an error class (v1::ErrorClass): ActionStatus
//   .error_class for a FAILED action, and a payload on the absl::Status a
//   call returns (WithErrorClass / ErrorClassOf below). Only TRANSIENT
//   failures are retried (the job's retry policy); an unclassed failure
//   reads as PERMANENT.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "domain/identity.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// Where an action stands.
struct ActionStatus {
  enum class State { kActive, kSucceeded, kFailed, kCancelled };
  State state = State::kActive;
  // The provider's id for the action; stable for its lifetime.
  std::string action_id;
  // The provider's details, a JSON document (progress, counts, output).
  std::string details;
  // Human-readable, when state is kFailed or kCancelled.
  std::string error;
  // When state is kFailed: how the failure would likely end if tried again.
  v1::ErrorClass error_class = v1::ERROR_CLASS_PERMANENT;
};

// The payload type URL under which a Status carries its error class.
inline constexpr absl::string_view kErrorClassPayload =
    "type.timer.dev/timer.v1.ErrorClass";

// `status` with its error class attached (a no-op for OK).
inline absl::Status WithErrorClass(absl::Status status, v1::ErrorClass c) {
  if (!status.ok())
    status.SetPayload(kErrorClassPayload, absl::Cord(v1::ErrorClass_Name(c)));
  return status;
}

// The class attached to `status`; PERMANENT when none is.
inline v1::ErrorClass ErrorClassOf(const absl::Status& status) {
  auto p = status.GetPayload(kErrorClassPayload);
  v1::ErrorClass c = v1::ERROR_CLASS_PERMANENT;
  if (!p || !v1::ErrorClass_Parse(std::string(*p), &c) ||
      c == v1::ERROR_CLASS_UNSPECIFIED) {
    return v1::ERROR_CLASS_PERMANENT;
  }
  return c;
}

class ActionProvider {
 public:
  virtual ~ActionProvider() = default;

  // Name (unique among loaded providers), version, description, input JSON
  // schema and ABI version.
  virtual const v1::ActionProvider& info() const = 0;

  // What `caller` may see of the provider's configuration, a JSON object
  // (the transfer provider: the endpoints `caller` may use), for
  // GetActionProvider; "" when the provider says nothing (an ABI 1.0
  // plugin). Never holds a secret. Unlike the other methods it is called on
  // the RPC's thread: it must not block (it only reads the configuration).
  virtual absl::StatusOr<std::string> Describe(const Identity& caller) {
    (void)caller;
    return std::string();
  }

  // Checks `body` (a JSON object) for a job owned by `owner`, at create and
  // update time, so a bad body never becomes a job.
  virtual absl::Status Validate(const Identity& owner, absl::string_view body) = 0;

  // Starts one action; see the idempotency contract above.
  virtual absl::StatusOr<ActionStatus> Start(absl::string_view request_id,
                                             const Identity& owner,
                                             absl::string_view body) = 0;

  virtual absl::StatusOr<ActionStatus> Status(absl::string_view action_id) = 0;

  // Asks the action to stop; it ends as kCancelled (or finishes first).
  virtual absl::Status Cancel(absl::string_view action_id) = 0;

  // The caller will not ask about `action_id` again; the provider may forget it.
  // Releasing an action that is still active cancels it first.
  virtual absl::Status Release(absl::string_view action_id) = 0;
};

// The loaded providers, by name. Immutable after timerd starts; thread-safe.
class ProviderRegistry {
 public:
  virtual ~ProviderRegistry() = default;
  // nullptr if no provider has this name.
  virtual ActionProvider* Find(absl::string_view name) const = 0;
  // Sorted by name.
  virtual std::vector<ActionProvider*> List() const = 0;
};

// A registry over providers someone else owns, given up front. For tests and
// for composing registries.
class StaticRegistry final : public ProviderRegistry {
 public:
  explicit StaticRegistry(std::vector<ActionProvider*> providers)
      : providers_(std::move(providers)) {
    std::sort(providers_.begin(), providers_.end(),
              [](auto* a, auto* b) { return a->info().name() < b->info().name(); });
  }
  ActionProvider* Find(absl::string_view name) const override {
    for (ActionProvider* p : providers_) {
      if (p->info().name() == name) return p;
    }
    return nullptr;
  }
  std::vector<ActionProvider*> List() const override { return providers_; }

 private:
  std::vector<ActionProvider*> providers_;
};

}  // namespace timer::domain
