/*
 * ThreadSanitizer annotations for Debian's (uninstrumented) absl::Mutex.
 *
 * Why: absl::Mutex is a futex-and-atomics lock implemented in
 * libabsl_synchronization.so. Abseil tells ThreadSanitizer about its lock and
 * unlock only when Abseil itself is compiled with -fsanitize=thread; Debian's
 * build is not, so a TSan build of our code sees every access guarded by an
 * absl::Mutex as a data race (the lock creates no happens-before edge that
 * TSan can see).
 *
 * What: this file defines the public lock/unlock entry points of absl::Mutex
 * and absl::CondVar, and absl::Notification's Notify/Wait, under their mangled
 * names. Linked into every executable
 * of a -DTIMER_SANITIZE=thread build (cmake/TimerSanitizers.cmake), these
 * definitions interpose on the library's: each one tells TSan what happens
 * (__tsan_mutex_pre_lock / post_lock / pre_unlock / post_unlock, the same
 * calls Abseil's own TSan build makes) and calls the real function, found
 * with dlsym(RTLD_NEXT). Calls made from inside libabsl_synchronization and
 * libgrpc go through the PLT and are annotated too.
 *
 * Only the outermost annotated call in a thread is annotated: the library's
 * entry points call one another (AwaitWithTimeout calls AwaitWithDeadline).
 *
 * Limits: code that runs *inside* a lock operation (absl::Condition
 * functions, evaluated by the library while it acquires or releases) runs
 * with TSan's access checks off, as between any pre_/post_ pair; Abseil's own
 * build re-enables them there, we cannot. Only the entry points listed below
 * are annotated; a new public locking entry point used by our code must be
 * added here. Notification::HasBeenNotified() is inline (an atomic load the
 * library's store does not pair with): use WaitForNotification*() to order
 * data published before Notify().
 *
 * Not compiled into normal or ASan builds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TIMER_ABSL_NS
#error "TIMER_ABSL_NS (the mangled Abseil inline namespace, e.g. \"7debian3\") is not set"
#endif

#define MU(name) "_ZN4absl" TIMER_ABSL_NS "5Mutex" name
#define CV(name) "_ZN4absl" TIMER_ABSL_NS "7CondVar" name
#define NO(name) "_ZN4absl" TIMER_ABSL_NS "12Notification" name
#define NOK(name) "_ZNK4absl" TIMER_ABSL_NS "12Notification" name

/* absl::Duration and absl::Time: trivially copyable 16-byte values, passed in
 * two integer registers; these structs have the same layout and ABI class. */
typedef struct {
  int64_t hi;
  uint32_t lo;
} timer_absl_duration;
typedef struct {
  timer_absl_duration rep;
} timer_absl_time;

/* Depth of annotated calls in this thread: only the outermost annotates. */
static __thread int timer_depth;

static void* timer_real(const char* name, void* _Atomic* slot) {
  void* fn = atomic_load_explicit(slot, memory_order_acquire);
  if (fn == NULL) {
    fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) {
      fprintf(stderr,
              "tsan_absl_mutex: %s not found after this executable; "
              "the Abseil ABI does not match this build\n",
              name);
      abort();
    }
    atomic_store_explicit(slot, fn, memory_order_release);
  }
  return fn;
}

/* REAL(type, name): the library's definition of the symbol named `name`. */
#define REAL(type, name)                  \
  ({                                      \
    static void* _Atomic timer_slot;      \
    (type) timer_real(name, &timer_slot); \
  })

#define RD __tsan_mutex_read_lock
#define OUTER (timer_depth == 0)

/* Before/after a call that takes `mu` (flags: 0 or RD). */
#define PRE_LOCK(mu, flags)                    \
  int outer = OUTER;                           \
  if (outer) __tsan_mutex_pre_lock(mu, flags); \
  ++timer_depth
#define POST_LOCK(mu, flags) \
  --timer_depth;             \
  if (outer) __tsan_mutex_post_lock(mu, flags, 0)

/* Before/after a call made holding `mu` that releases it while it waits and
 * takes it back before returning (Await*, CondVar::Wait*): an unlock, then a
 * lock. */
#define PRE_WAIT(mu)                 \
  int outer = OUTER;                 \
  if (outer) {                       \
    __tsan_mutex_pre_unlock(mu, 0);  \
    __tsan_mutex_post_unlock(mu, 0); \
    __tsan_mutex_pre_lock(mu, 0);    \
  }                                  \
  ++timer_depth
#define POST_WAIT(mu) POST_LOCK(mu, 0)

/* ---- Mutex: lock and unlock ---- */

#define DEFINE_LOCK(fn, sym, flags)     \
  void fn(void* mu) __asm__(MU(sym));   \
  void fn(void* mu) {                   \
    PRE_LOCK(mu, flags);                \
    REAL(void (*)(void*), MU(sym))(mu); \
    POST_LOCK(mu, flags);               \
  }
DEFINE_LOCK(timer_lock, "4LockEv", 0)
DEFINE_LOCK(timer_reader_lock, "10ReaderLockEv", RD)

#define DEFINE_UNLOCK(fn, sym, flags)               \
  void fn(void* mu) __asm__(MU(sym));               \
  void fn(void* mu) {                               \
    int outer = OUTER;                              \
    if (outer) __tsan_mutex_pre_unlock(mu, flags);  \
    ++timer_depth;                                  \
    REAL(void (*)(void*), MU(sym))(mu);             \
    --timer_depth;                                  \
    if (outer) __tsan_mutex_post_unlock(mu, flags); \
  }
DEFINE_UNLOCK(timer_unlock, "6UnlockEv", 0)
DEFINE_UNLOCK(timer_reader_unlock, "12ReaderUnlockEv", RD)

#define DEFINE_TRY_LOCK(fn, sym, flags)                                                  \
  _Bool fn(void* mu) __asm__(MU(sym));                                                   \
  _Bool fn(void* mu) {                                                                   \
    PRE_LOCK(mu, (flags) | __tsan_mutex_try_lock);                                       \
    _Bool ok = REAL(_Bool(*)(void*), MU(sym))(mu);                                       \
    --timer_depth;                                                                       \
    if (outer)                                                                           \
      __tsan_mutex_post_lock(                                                            \
          mu, (flags) | (ok ? __tsan_mutex_try_lock : __tsan_mutex_try_lock_failed), 0); \
    return ok;                                                                           \
  }
DEFINE_TRY_LOCK(timer_try_lock, "7TryLockEv", 0)
DEFINE_TRY_LOCK(timer_reader_try_lock, "13ReaderTryLockEv", RD)

/* LockWhen*: return holding the lock (the timed forms return whether the
 * condition holds, and hold the lock either way). */
#define DEFINE_LOCK_WHEN(fn, sym, flags)                   \
  void fn(void* mu, const void* cond) __asm__(MU(sym));    \
  void fn(void* mu, const void* cond) {                    \
    PRE_LOCK(mu, flags);                                   \
    REAL(void (*)(void*, const void*), MU(sym))(mu, cond); \
    POST_LOCK(mu, flags);                                  \
  }
DEFINE_LOCK_WHEN(timer_lock_when, "8LockWhenERKNS0_9ConditionE", 0)
DEFINE_LOCK_WHEN(timer_reader_lock_when, "14ReaderLockWhenERKNS0_9ConditionE", RD)

#define DEFINE_TIMED_LOCK_WHEN(fn, sym, flags, arg_t)                          \
  _Bool fn(void* mu, const void* cond, arg_t t) __asm__(MU(sym));              \
  _Bool fn(void* mu, const void* cond, arg_t t) {                              \
    PRE_LOCK(mu, flags);                                                       \
    _Bool r = REAL(_Bool(*)(void*, const void*, arg_t), MU(sym))(mu, cond, t); \
    POST_LOCK(mu, flags);                                                      \
    return r;                                                                  \
  }
DEFINE_TIMED_LOCK_WHEN(timer_lock_when_timeout,
                       "19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE", 0,
                       timer_absl_duration)
DEFINE_TIMED_LOCK_WHEN(timer_lock_when_deadline,
                       "20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE", 0,
                       timer_absl_time)
DEFINE_TIMED_LOCK_WHEN(timer_reader_lock_when_timeout,
                       "25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE", RD,
                       timer_absl_duration)
DEFINE_TIMED_LOCK_WHEN(timer_reader_lock_when_deadline,
                       "26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE", RD,
                       timer_absl_time)

/* ---- Mutex::Await* ---- */

void timer_await(void* mu, const void* cond) __asm__(MU("5AwaitERKNS0_9ConditionE"));
void timer_await(void* mu, const void* cond) {
  PRE_WAIT(mu);
  REAL(void (*)(void*, const void*), MU("5AwaitERKNS0_9ConditionE"))(mu, cond);
  POST_WAIT(mu);
}

#define DEFINE_TIMED_AWAIT(fn, sym, arg_t)                                     \
  _Bool fn(void* mu, const void* cond, arg_t t) __asm__(MU(sym));              \
  _Bool fn(void* mu, const void* cond, arg_t t) {                              \
    PRE_WAIT(mu);                                                              \
    _Bool r = REAL(_Bool(*)(void*, const void*, arg_t), MU(sym))(mu, cond, t); \
    POST_WAIT(mu);                                                             \
    return r;                                                                  \
  }
DEFINE_TIMED_AWAIT(timer_await_timeout,
                   "16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
                   timer_absl_duration)
DEFINE_TIMED_AWAIT(timer_await_deadline,
                   "17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE", timer_absl_time)

/* ---- CondVar::Wait*(mu) ---- */

void timer_cv_wait(void* cv, void* mu) __asm__(CV("4WaitEPNS0_5MutexE"));
void timer_cv_wait(void* cv, void* mu) {
  PRE_WAIT(mu);
  REAL(void (*)(void*, void*), CV("4WaitEPNS0_5MutexE"))(cv, mu);
  POST_WAIT(mu);
}

#define DEFINE_TIMED_CV_WAIT(fn, sym, arg_t)                           \
  _Bool fn(void* cv, void* mu, arg_t t) __asm__(CV(sym));              \
  _Bool fn(void* cv, void* mu, arg_t t) {                              \
    PRE_WAIT(mu);                                                      \
    _Bool r = REAL(_Bool(*)(void*, void*, arg_t), CV(sym))(cv, mu, t); \
    POST_WAIT(mu);                                                     \
    return r;                                                          \
  }
DEFINE_TIMED_CV_WAIT(timer_cv_wait_timeout,
                     "15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE", timer_absl_duration)
DEFINE_TIMED_CV_WAIT(timer_cv_wait_deadline, "16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE",
                     timer_absl_time)

/* ---- ~Mutex (complete- and base-object destructors share one body) ---- */

#define DEFINE_MUTEX_DTOR(fn, sym)                                \
  void fn(void* mu) __asm__(MU(sym));                             \
  void fn(void* mu) {                                             \
    if (OUTER) __tsan_mutex_destroy(mu, __tsan_mutex_not_static); \
    ++timer_depth;                                                \
    REAL(void (*)(void*), MU(sym))(mu);                           \
    --timer_depth;                                                \
  }
DEFINE_MUTEX_DTOR(timer_mutex_d1, "D1Ev")
DEFINE_MUTEX_DTOR(timer_mutex_d2, "D2Ev")

/* ---- Notification: Notify() releases, a successful wait acquires ----
 * The waits return at once, without the mutex, when Notify() has already
 * happened: that fast path needs its own edge. */

void timer_notify(void* n) __asm__(NO("6NotifyEv"));
void timer_notify(void* n) {
  if (OUTER) __tsan_release(n);
  ++timer_depth;
  REAL(void (*)(void*), NO("6NotifyEv"))(n);
  --timer_depth;
}

void timer_wait_notification(const void* n) __asm__(NOK("19WaitForNotificationEv"));
void timer_wait_notification(const void* n) {
  int outer = OUTER;
  ++timer_depth;
  REAL(void (*)(const void*), NOK("19WaitForNotificationEv"))(n);
  --timer_depth;
  if (outer) __tsan_acquire((void*)n);
}

#define DEFINE_TIMED_NOTIFICATION_WAIT(fn, sym, arg_t)            \
  _Bool fn(const void* n, arg_t t) __asm__(NOK(sym));             \
  _Bool fn(const void* n, arg_t t) {                              \
    int outer = OUTER;                                            \
    ++timer_depth;                                                \
    _Bool r = REAL(_Bool(*)(const void*, arg_t), NOK(sym))(n, t); \
    --timer_depth;                                                \
    if (outer && r) __tsan_acquire((void*)n);                     \
    return r;                                                     \
  }
DEFINE_TIMED_NOTIFICATION_WAIT(timer_wait_notification_timeout,
                               "30WaitForNotificationWithTimeoutENS0_8DurationE",
                               timer_absl_duration)
DEFINE_TIMED_NOTIFICATION_WAIT(timer_wait_notification_deadline,
                               "31WaitForNotificationWithDeadlineENS0_4TimeE",
                               timer_absl_time)
