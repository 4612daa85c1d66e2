/* timer/action_provider.h: the C ABI between timerd and action-provider
 * plugins.
 *
 * An action provider carries out one run of a job: timerd hands it the job's
 * JSON body, the provider starts an *action*, and timerd polls the action's
 * status until it ends. A provider is a shared object, written in C or C++ and
 * compiled separately from timerd, that exports exactly one symbol:
 *
 *   const timer_ap_api* timer_ap_get_api(uint32_t host_major,
 *                                        uint32_t host_minor);
 *
 * which returns a constant table of function pointers (timer_ap_api). The
 * verbs follow the Globus Automate action-provider API: validate, start
 * (run), status, cancel, release. This header is pure C and uses standard
 * headers only, so a provider needs nothing else from this project.
 *
 * ---------------------------------------------------------------------------
 * Versioning (as PJRT and CLAP do it)
 * ---------------------------------------------------------------------------
 * TIMER_AP_ABI_MAJOR changes on any breaking change; TIMER_AP_ABI_MINOR on
 * append-only additions (new fields or function pointers at the *end* of a
 * struct, new enum values). Every struct that crosses the boundary starts
 * with `size_t struct_size`, set by whoever fills it in to the sizeof it was
 * compiled with, so the reader can tell which trailing fields exist:
 * a field is present iff struct_size >= offsetof(field) + sizeof(field)
 * (TIMER_AP_HAS_FIELD below).
 *
 *   - timerd passes its own version to timer_ap_get_api(). A provider returns
 *     NULL if it cannot serve that host (e.g. a different major), otherwise a
 *     table whose abi_major/abi_minor say what the provider was built with.
 *   - timerd refuses a table whose abi_major differs from its own, or whose
 *     struct_size is smaller than TIMER_AP_API_V1_0_SIZE (every 1.0 field).
 *   - A newer provider (larger minor) works with an older host: the host
 *     only reads the fields it knows. An older provider works with a newer
 *     host: the host checks struct_size before touching a newer field.
 *
 * ---------------------------------------------------------------------------
 * Ownership and memory ("whoever allocates frees")
 * ---------------------------------------------------------------------------
 *   - Strings cross as timer_ap_str: a pointer and a byte length, UTF-8, not
 *     necessarily NUL-terminated. A string *passed into* a call is borrowed:
 *     valid only for the duration of that call; copy it to keep it.
 *   - Every object a provider returns (timer_ap_error, timer_ap_status,
 *     timer_ap_provider) is owned by the caller and released with the
 *     matching destroy function from the same table, never with free().
 *   - Strings inside a returned object live as long as that object.
 *   - The strings in the table itself (name, version, ...) and the table
 *     live until the shared object is unloaded.
 *
 * ---------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------
 * A call that can fail returns timer_ap_error*: NULL means success, anything
 * else is an opaque error carrying a timer_ap_code (the gRPC/Abseil canonical
 * codes, same numbers) and a message; the caller reads it with error_code()
 * and error_message() and frees it with error_destroy(). Messages name the
 * offending field ("transfer_items[0].source_path: ...") and hold no secrets.
 * No C++ exception, longjmp or signal may cross the boundary: a C++ provider
 * catches everything in every entry point and returns TIMER_AP_INTERNAL.
 *
 * ---------------------------------------------------------------------------
 * Thread-safety
 * ---------------------------------------------------------------------------
 * Each function pointer below is tagged:
 *   [thread-safe]  may be called from any thread, concurrently with any
 *                  other [thread-safe] call on the same provider instance.
 *   [main-thread]  called by the host from one thread, never concurrently
 *                  with any other call on the same provider instance.
 * The host calls create() once per loaded plugin before anything else, and
 * destroy() last, after every other call has returned. A provider does long
 * work (copying data, waiting) on threads it owns, a bounded number of them
 * (not one per action); destroy() must stop and join them before it
 * returns, because the host dlclose()s right after. A provider whose thread
 * is stuck (in a system call that cancel cannot interrupt) may instead wait
 * a bounded time, log the actions it leaves, and keep its code mapped
 * (dlopen RTLD_NOLOAD|RTLD_NODELETE on itself) so the host's dlclose() does
 * not unmap it; destroy() must never block without a deadline.
 */
#ifndef TIMER_ACTION_PROVIDER_H_
#define TIMER_ACTION_PROVIDER_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TIMER_AP_ABI_MAJOR 1
#define TIMER_AP_ABI_MINOR 2

/* The one exported symbol, for dlsym(). */
#define TIMER_AP_ENTRY_SYMBOL "timer_ap_get_api"

/* True if `ptr` (a struct that starts with struct_size) has `field`. */
#define TIMER_AP_HAS_FIELD(type, ptr, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* A borrowed or object-owned byte string; see "Ownership" above. `data` may
 * be NULL only when `size` is 0. */
typedef struct timer_ap_str {
  const char* data;
  size_t size;
} timer_ap_str;

/* The gRPC / absl::StatusCode canonical codes, same values. */
typedef enum timer_ap_code {
  TIMER_AP_OK = 0,
  TIMER_AP_CANCELLED = 1,
  TIMER_AP_UNKNOWN = 2,
  TIMER_AP_INVALID_ARGUMENT = 3,
  TIMER_AP_DEADLINE_EXCEEDED = 4,
  TIMER_AP_NOT_FOUND = 5,
  TIMER_AP_ALREADY_EXISTS = 6,
  TIMER_AP_PERMISSION_DENIED = 7,
  TIMER_AP_RESOURCE_EXHAUSTED = 8,
  TIMER_AP_FAILED_PRECONDITION = 9,
  TIMER_AP_ABORTED = 10,
  TIMER_AP_OUT_OF_RANGE = 11,
  TIMER_AP_UNIMPLEMENTED = 12,
  TIMER_AP_INTERNAL = 13,
  TIMER_AP_UNAVAILABLE = 14,
  TIMER_AP_DATA_LOSS = 15,
  TIMER_AP_UNAUTHENTICATED = 16
} timer_ap_code;

/* Where an action stands. 0 is deliberately not a valid state. */
typedef enum timer_ap_state {
  TIMER_AP_STATE_ACTIVE = 1,
  TIMER_AP_STATE_SUCCEEDED = 2,
  TIMER_AP_STATE_FAILED = 3,
  TIMER_AP_STATE_CANCELLED = 4
} timer_ap_state;

/* ABI 1.2. How a failure is likely to end if the same action is tried
 * again: the host retries only TRANSIENT failures (within the job's retry
 * policy). 0 means "not said" and reads as PERMANENT, as does every failure
 * of a provider built against 1.0 or 1.1. */
typedef enum timer_ap_error_class {
  TIMER_AP_ERROR_CLASS_UNSPECIFIED = 0,
  /* The same request would fail again: a bad body, a 4xx answer, a missing
   * file. Not retried. */
  TIMER_AP_ERROR_CLASS_PERMANENT = 1,
  /* May succeed if tried again later: a refused or reset connection, a
   * timeout, HTTP 429 or 5xx, a server restarting. Retried per policy. */
  TIMER_AP_ERROR_CLASS_TRANSIENT = 2,
  /* Needs a person before it can succeed: expired or revoked credentials,
   * a consent to give, a quota to raise. Not retried; shown as such. */
  TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION = 3
} timer_ap_error_class;

/* Log levels for timer_ap_host.log. */
typedef enum timer_ap_log_level {
  TIMER_AP_LOG_DEBUG = 1,
  TIMER_AP_LOG_INFO = 2,
  TIMER_AP_LOG_WARN = 3,
  TIMER_AP_LOG_ERROR = 4
} timer_ap_log_level;

/* Opaque, defined by each provider. */
typedef struct timer_ap_error timer_ap_error;
typedef struct timer_ap_provider timer_ap_provider;

/* Who the job belongs to. Filled in by the host; borrowed for one call. */
typedef struct timer_ap_identity {
  size_t struct_size;
  /* The owner name jobs are stored under, e.g. "alice@example.org". */
  timer_ap_str name;
  /* How it was established: "none", "token", "jwt" or "mtls". */
  timer_ap_str auth_method;
} timer_ap_identity;

/* Services the host offers a provider. Filled in by the host and valid from
 * create() until destroy() returns. */
typedef struct timer_ap_host {
  size_t struct_size;
  /* Passed back as the first argument of every callback below. */
  void* context;
  /* [thread-safe] Writes one line to timerd's log, attributed to the
   * provider. `message` is borrowed. May be NULL: then do not log. */
  void (*log)(void* context, timer_ap_log_level level, timer_ap_str message);
} timer_ap_host;

/* ABI 1.1. What one caller may see of a provider instance's configuration,
 * allocated by the provider and owned by the caller, who frees it with
 * timer_ap_api.description_destroy(). The string lives as long as the
 * object. */
typedef struct timer_ap_description {
  size_t struct_size;
  /* A JSON object; "{}" when there is nothing to say. Never a secret (a
   * key, a password, the name of a file holding one). */
  timer_ap_str json;
} timer_ap_description;

/* One action's status, allocated by the provider and owned by the caller,
 * who frees it with timer_ap_api.status_destroy(). The strings live as long
 * as the object. */
typedef struct timer_ap_status {
  size_t struct_size;
  timer_ap_state state;
  /* The provider's id for the action; stable for its lifetime, unique among
   * the provider's unreleased actions. */
  timer_ap_str action_id;
  /* A JSON object: progress, counts, output. Never empty ("{}" at least). */
  timer_ap_str details;
  /* Human-readable reason when state is FAILED or CANCELLED, else empty. */
  timer_ap_str error;
  /* ABI 1.2 (present iff TIMER_AP_HAS_FIELD(timer_ap_status, s, error_class)):
   * when state is FAILED, how the failure is likely to end if tried again;
   * otherwise UNSPECIFIED. */
  timer_ap_error_class error_class;
} timer_ap_status;

typedef struct timer_ap_api {
  size_t struct_size; /* sizeof(timer_ap_api) the provider was built with */
  uint32_t abi_major; /* TIMER_AP_ABI_MAJOR the provider was built with */
  uint32_t abi_minor; /* TIMER_AP_ABI_MINOR the provider was built with */

  /* Identity of the provider; static, live until the object is unloaded. */
  /* Unique among loaded providers; [a-z0-9_-]{1,64}; jobs name it. The
   * host opens provider NAME from the file NAME.so of its plugin directory
   * and refuses a file whose provider has another name. */
  timer_ap_str name;
  timer_ap_str version;     /* the provider's own version, e.g. "1.2.0" */
  timer_ap_str description; /* one sentence */
  /* JSON Schema (draft 2020-12) of the body start() and validate() take.
   * Users introspect it with `timer provider show NAME`. */
  timer_ap_str input_schema;

  /* --- errors --------------------------------------------------------- */
  /* [thread-safe] The error's code; never TIMER_AP_OK. */
  timer_ap_code (*error_code)(const timer_ap_error* error);
  /* [thread-safe] The error's message; lives as long as `error`. */
  timer_ap_str (*error_message)(const timer_ap_error* error);
  /* [thread-safe] Frees `error`. NULL is a no-op. */
  void (*error_destroy)(timer_ap_error* error);

  /* --- lifecycle ------------------------------------------------------ */
  /* [main-thread] Creates the provider instance from its configuration, a
   * JSON object (the `[plugins.NAME]` table of timerd's config, "{}" when
   * there is none). `config_json` and `host` are borrowed for the call;
   * `host` itself (the pointee) stays valid until destroy() returns.
   * On success stores a caller-owned instance in *out and returns NULL; on
   * failure (e.g. INVALID_ARGUMENT naming a bad config key) leaves *out
   * untouched and returns an error. */
  timer_ap_error* (*create)(timer_ap_str config_json, const timer_ap_host* host,
                            timer_ap_provider** out);
  /* [main-thread] Cancels whatever still runs, joins the provider's threads
   * and frees `provider`. Called after every other call has returned and
   * before dlclose(). NULL is a no-op. */
  void (*destroy)(timer_ap_provider* provider);

  /* --- actions -------------------------------------------------------- */
  /* [thread-safe] Checks `body` (a JSON object) for a job owned by `owner`,
   * without side effects, at job create and update time, so a bad body
   * never becomes a job. INVALID_ARGUMENT for a bad body, PERMISSION_DENIED
   * when `owner` may not use a resource the body names. Quick: at most a
   * few stat() calls. */
  timer_ap_error* (*validate)(timer_ap_provider* provider, const timer_ap_identity* owner,
                              timer_ap_str body);

  /* [thread-safe] Starts one action and returns its status in *out
   * (caller-owned; free with status_destroy()). Validates first, like
   * validate(). Idempotent on `request_id` (the run's stable key,
   * "<job_id>/<run_number>"): while the action is not released, a second
   * start() with the same key returns that action's current status and
   * never starts a second one, whatever the body. Returns quickly; the
   * work happens on the provider's threads. RESOURCE_EXHAUSTED when the
   * provider is at capacity (its threads busy and its queue full): nothing
   * was started and the request_id is not remembered, so the same start may
   * be retried later; the message names the provider's limit. */
  timer_ap_error* (*start)(timer_ap_provider* provider, timer_ap_str request_id,
                           const timer_ap_identity* owner, timer_ap_str body,
                           timer_ap_status** out);

  /* [thread-safe] The action's current status in *out (caller-owned).
   * NOT_FOUND for an unknown or released action id. */
  timer_ap_error* (*status)(timer_ap_provider* provider, timer_ap_str action_id,
                            timer_ap_status** out);

  /* [thread-safe] Asks the action to stop; it ends CANCELLED soon (or ends
   * otherwise if it finished first). Returns without waiting. Cancelling an
   * ended action is a successful no-op. NOT_FOUND for an unknown id. */
  timer_ap_error* (*cancel)(timer_ap_provider* provider, timer_ap_str action_id);

  /* [thread-safe] The host will not ask about the action again; the provider
   * forgets it and its request_id (status() answers NOT_FOUND from now on).
   * Releasing an ACTIVE action also cancels it; the provider frees it once
   * its work has stopped (the host may release right after cancel() when it
   * gives up on a run). NOT_FOUND for an unknown id. */
  timer_ap_error* (*release)(timer_ap_provider* provider, timer_ap_str action_id);

  /* [thread-safe] Frees a status returned by start() or status(). NULL is a
   * no-op. */
  void (*status_destroy)(timer_ap_status* status);

  /* --- ABI 1.1 ------------------------------------------------------- */
  /* Read only when struct_size says they are there (TIMER_AP_HAS_FIELD);
   * either may be NULL in a 1.1 table that has nothing to describe. */

  /* [thread-safe] What `caller` may see of this instance's configuration
   * (`timer provider show NAME`), as a JSON object in *out (caller-owned;
   * free with description_destroy()): e.g. the transfer provider's
   * endpoints that `caller` may use. Returns quickly, without I/O to other
   * machines. Never holds a secret. */
  timer_ap_error* (*describe)(timer_ap_provider* provider,
                              const timer_ap_identity* caller,
                              timer_ap_description** out);
  /* [thread-safe] Frees a description. NULL is a no-op. */
  void (*description_destroy)(timer_ap_description* description);

  /* --- ABI 1.2 ------------------------------------------------------- */
  /* [thread-safe] The class of an error returned by any call above (e.g.
   * start() failing before an action exists). May be NULL: every error then
   * reads as PERMANENT. */
  timer_ap_error_class (*error_class)(const timer_ap_error* error);

  /* ABI 1.3 and later append fields here. */
} timer_ap_api;

/* Size of a 1.0 table: the host refuses anything smaller. */
#define TIMER_AP_API_V1_0_SIZE \
  (offsetof(timer_ap_api, status_destroy) + sizeof(void (*)(timer_ap_status*)))

/* The entry point. [thread-safe] May be called more than once and must
 * return the same table each time (or NULL). `host_major`/`host_minor` are
 * the host's TIMER_AP_ABI_MAJOR/MINOR; return NULL to refuse a host this
 * provider cannot serve. Providers define it with TIMER_AP_EXPORT. */
typedef const timer_ap_api* (*timer_ap_get_api_fn)(uint32_t host_major,
                                                   uint32_t host_minor);

#if defined(__GNUC__) || defined(__clang__)
#define TIMER_AP_EXPORT __attribute__((visibility("default")))
#else
#define TIMER_AP_EXPORT
#endif

TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api(uint32_t host_major,
                                                     uint32_t host_minor);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TIMER_ACTION_PROVIDER_H_ */
