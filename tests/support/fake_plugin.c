/* A provider written in plain C, compiled several times with different
 * definitions to make good and deliberately broken plugins for the loader
 * tests. That it compiles as C is itself a test of the header.
 *
 *   FAKE_NAME          provider name (string literal), default "fake_c"
 *   FAKE_MAJOR         abi_major reported in the table
 *   FAKE_MINOR         abi_minor reported in the table
 *   FAKE_SMALL_TABLE   report a struct_size smaller than ABI 1.0's
 *   FAKE_REFUSE_HOST   timer_ap_get_api returns NULL
 *   FAKE_NO_ENTRY      export the entry point under another name
 *   FAKE_CREATE_FAIL   create() fails with INVALID_ARGUMENT
 *   FAKE_FAULT         1: start() blocks for 4 s (a provider that hangs);
 *                      2: start() returns garbage (an unknown state, an
 *                         empty action id, 8 MiB of details);
 *                      3: start() calls abort()
 *   FAKE_TABLE         0 or 1: the table (and every status) is as big as
 *                      ABI 1.0's or 1.1's, as a provider built against that
 *                      minor; its status structs stop before error_class
 *                      (the memory after them says TRANSIENT, which the
 *                      host must not read)
 *   FAKE_FAIL          actions end FAILED ("it broke"); a body holding
 *                      "start_error" makes start() itself fail UNAVAILABLE
 *   FAKE_CLASS         with FAKE_FAIL in a 1.2 table: the timer_ap_error_class
 *                      of those failures (status and error_class())
 *
 * Every variant, when loaded (by its constructor, before any check of the
 * host could refuse it), appends its provider name and a newline to the
 * file named by the environment variable TIMER_FAKE_LOADED_MARKER, if set:
 * the tests see which files a host opened at all.
 *
 * The good variant reports ABI 1.<FAKE_MINOR> with a table grown by one
 * field, as a provider built against a newer minor would. Its actions end
 * at once: SUCCEEDED, with the config it was created with as details.
 */
#define _GNU_SOURCE /* memmem */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timer/action_provider.h"

#ifndef FAKE_NAME
#define FAKE_NAME "fake_c"
#endif
#ifndef FAKE_MAJOR
#define FAKE_MAJOR TIMER_AP_ABI_MAJOR
#endif
#ifndef FAKE_MINOR
#define FAKE_MINOR 7
#endif

__attribute__((constructor)) static void fake_loaded(void) {
  const char* marker = getenv("TIMER_FAKE_LOADED_MARKER");
  if (marker == NULL || marker[0] == '\0') return;
  FILE* f = fopen(marker, "a");
  if (f == NULL) return;
  fputs(FAKE_NAME "\n", f);
  fclose(f);
}

#ifndef FAKE_CLASS
#define FAKE_CLASS TIMER_AP_ERROR_CLASS_UNSPECIFIED
#endif

struct timer_ap_error {
  timer_ap_code code;
  char message[128];
};

/* A status as the provider's minor lays it out: struct_size stops before
 * error_class for 1.0 and 1.1 (whose header had no such field). */
static size_t status_size(void) {
#if defined(FAKE_TABLE)
  return offsetof(timer_ap_status, error_class);
#else
  return sizeof(timer_ap_status);
#endif
}

struct timer_ap_provider {
  char* config;
  size_t config_size;
};

static timer_ap_error* make_error(timer_ap_code code, const char* message) {
  timer_ap_error* e = (timer_ap_error*)calloc(1, sizeof(*e));
  e->code = code;
  strncpy(e->message, message, sizeof(e->message) - 1);
  return e;
}

static timer_ap_code error_code(const timer_ap_error* e) { return e->code; }
static timer_ap_str error_message(const timer_ap_error* e) {
  timer_ap_str s = {e->message, strlen(e->message)};
  return s;
}
static void error_destroy(timer_ap_error* e) { free(e); }

static timer_ap_error* create(timer_ap_str config, const timer_ap_host* host,
                              timer_ap_provider** out) {
#ifdef FAKE_CREATE_FAIL
  (void)config;
  (void)host;
  (void)out;
  return make_error(TIMER_AP_INVALID_ARGUMENT,
                    "plugins." FAKE_NAME ".x: refused on purpose");
#else
  timer_ap_provider* p = (timer_ap_provider*)calloc(1, sizeof(*p));
  p->config = (char*)malloc(config.size + 1);
  memcpy(p->config, config.data, config.size);
  p->config_size = config.size;
  if (host != NULL && host->log != NULL) {
    timer_ap_str hello = {"created", 7};
    host->log(host->context, TIMER_AP_LOG_INFO, hello);
  }
  *out = p;
  return NULL;
#endif
}

static void destroy(timer_ap_provider* p) {
  if (p == NULL) return;
  free(p->config);
  free(p);
}

static timer_ap_error* validate(timer_ap_provider* p, const timer_ap_identity* owner,
                                timer_ap_str body) {
  (void)p;
  (void)owner;
  if (body.size < 2 || body.data[0] != '{') {
    return make_error(TIMER_AP_INVALID_ARGUMENT, "body: must be a JSON object");
  }
  return NULL;
}

/* The status and its strings in one block, freed with free(). */
static timer_ap_status* make_status(const timer_ap_provider* p, timer_ap_str id) {
  size_t n = sizeof(timer_ap_status) + id.size + p->config_size;
  timer_ap_status* s = (timer_ap_status*)malloc(n);
  char* id_copy = (char*)(s + 1);
  char* details = id_copy + id.size;
  memcpy(id_copy, id.data, id.size);
  memcpy(details, p->config, p->config_size);
  s->struct_size = status_size();
#ifdef FAKE_FAIL
  s->state = TIMER_AP_STATE_FAILED;
  s->error.data = "it broke";
  s->error.size = 8;
#if defined(FAKE_TABLE)
  /* Past struct_size: not this provider's to say. */
  s->error_class = TIMER_AP_ERROR_CLASS_TRANSIENT;
#else
  s->error_class = FAKE_CLASS;
#endif
#else
  s->state = TIMER_AP_STATE_SUCCEEDED;
  s->error.data = NULL;
  s->error.size = 0;
  s->error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
#endif
  s->action_id.data = id_copy;
  s->action_id.size = id.size;
  s->details.data = details;
  s->details.size = p->config_size;
  return s;
}

static timer_ap_error* start(timer_ap_provider* p, timer_ap_str request_id,
                             const timer_ap_identity* owner, timer_ap_str body,
                             timer_ap_status** out) {
  timer_ap_error* e = validate(p, owner, body);
  if (e != NULL) return e;
#ifdef FAKE_FAIL
  if (body.size >= 11 && memmem(body.data, body.size, "start_error", 11) != NULL) {
    return make_error(TIMER_AP_UNAVAILABLE, "start: connection refused");
  }
#endif
#if defined(FAKE_FAULT) && FAKE_FAULT == 1
  struct timespec hang = {4, 0};
  while (nanosleep(&hang, &hang) != 0) {
  }
#elif defined(FAKE_FAULT) && FAKE_FAULT == 2
  {
    const size_t big = (size_t)8 << 20;
    timer_ap_status* g = (timer_ap_status*)malloc(sizeof(timer_ap_status) + big);
    char* details = (char*)(g + 1);
    memset(details, 'x', big);
    g->struct_size = sizeof(*g);
    g->state = (timer_ap_state)77;
    g->action_id.data = NULL;
    g->action_id.size = 0;
    g->details.data = details;
    g->details.size = big;
    g->error.data = NULL;
    g->error.size = 0;
    *out = g;
    (void)request_id;
    return NULL;
  }
#elif defined(FAKE_FAULT) && FAKE_FAULT == 3
  abort();
#endif
  *out = make_status(p, request_id); /* action id = request id */
  return NULL;
}

static timer_ap_error* status(timer_ap_provider* p, timer_ap_str action_id,
                              timer_ap_status** out) {
  *out = make_status(p, action_id);
  return NULL;
}

static timer_ap_error* cancel(timer_ap_provider* p, timer_ap_str action_id) {
  (void)p;
  (void)action_id;
  return NULL;
}

static timer_ap_error* release(timer_ap_provider* p, timer_ap_str action_id) {
  (void)p;
  (void)action_id;
  return make_error(TIMER_AP_UNAVAILABLE, "release: try later");
}

static void status_destroy(timer_ap_status* s) { free(s); }

#if defined(FAKE_FAIL) && !defined(FAKE_TABLE)
static timer_ap_error_class error_class(const timer_ap_error* e) {
  (void)e;
  return FAKE_CLASS;
}
#endif

/* A table from a future minor: one more field at the end. */
typedef struct fake_api {
  timer_ap_api base;
  void (*from_the_future)(void);
} fake_api;

static const fake_api kApi = {
    {
#ifdef FAKE_SMALL_TABLE
        offsetof(timer_ap_api, status),
#elif defined(FAKE_TABLE) && FAKE_TABLE == 0
        TIMER_AP_API_V1_0_SIZE,
#elif defined(FAKE_TABLE) && FAKE_TABLE == 1
        offsetof(timer_ap_api, error_class),
#else
        sizeof(fake_api),
#endif
        FAKE_MAJOR,
        FAKE_MINOR,
        {FAKE_NAME, sizeof(FAKE_NAME) - 1},
        {"0.0.1", 5},
        {"A provider in C, for tests.", 27},
        {"{\"type\":\"object\"}", 17},
        error_code,
        error_message,
        error_destroy,
        create,
        destroy,
        validate,
        start,
        status,
        cancel,
        release,
        status_destroy,
        NULL, /* describe */
        NULL, /* description_destroy */
#if defined(FAKE_FAIL) && !defined(FAKE_TABLE)
        error_class,
#else
        NULL, /* error_class: every error reads PERMANENT */
#endif
    },
    NULL,
};

#ifdef FAKE_NO_ENTRY
TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api_misspelled(uint32_t host_major,
                                                                uint32_t host_minor) {
#else
const timer_ap_api* timer_ap_get_api(uint32_t host_major, uint32_t host_minor) {
#endif
  (void)host_minor;
#ifdef FAKE_REFUSE_HOST
  (void)host_major;
  (void)kApi;
  return NULL;
#else
  (void)host_major;
  return &kApi.base;
#endif
}
