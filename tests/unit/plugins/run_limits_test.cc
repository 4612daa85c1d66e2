// run_limits (plugins/transfer/run_limits.h): what both copiers share for a
// run. Here: RecordFailure, which decides fail_on_quota_errors on a failed
// file's status code (RESOURCE_EXHAUSTED: a full destination or an
// exceeded quota, as every storage's writer says it), never on its text.
#include "run_limits.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "copier.h"
#include "provider_support.h"
#include "transfer_options.h"

namespace timer::plugins::transfer {
namespace {

struct Recorded {
  TransferCounters c;
  std::string first_error;
  nlohmann::json errors = nlohmann::json::array();
  std::string stop;
};

Recorded Record(bool fail_on_quota_errors, const std::string& path, const Err& error) {
  Request req;
  req.options.fail_on_quota_errors = fail_on_quota_errors;
  Recorded r;
  RecordFailure(req, path, error, &r.c, &r.first_error, &r.errors, &r.stop);
  return r;
}

// A full destination (RESOURCE_EXHAUSTED, whichever storage) fails the file
// and, with fail_on_quota_errors, stops the run at once; without it the
// run goes on (the job's next run tries the file again).
TEST(RecordFailureTest, AFullDestinationStopsTheRunOnlyWithFailOnQuotaErrors) {
  const Err full_local = ErrnoError("write", ENOSPC);
  const Err over_quota = ErrnoError("copy", EDQUOT);
  const Err full_remote = ResourceExhausted("sftp: write t/a.bin: the disk is full");
  for (const Err& e : {full_local, over_quota, full_remote}) {
    for (const bool fail_fast : {false, true}) {
      SCOPED_TRACE(e.message + (fail_fast ? " (fail_on_quota_errors)" : ""));
      const Recorded r = Record(fail_fast, "t/a.bin", e);
      EXPECT_EQ(r.c.files_failed, 1);
      EXPECT_EQ(r.first_error, "t/a.bin: " + e.message);
      ASSERT_EQ(r.errors.size(), 1u);
      EXPECT_EQ(r.errors[0]["path"], "t/a.bin");
      EXPECT_EQ(r.errors[0]["error"], e.message);
      if (fail_fast) {
        EXPECT_EQ(r.stop,
                  "fail_on_quota_errors: the destination is full or over its quota: "
                  "t/a.bin: " +
                      e.message);
      } else {
        EXPECT_EQ(r.stop, "");
      }
    }
  }
}

// The text of a full disk in a message (a file named after it, an error
// quoting a name) is not a full disk: only the code decides.
TEST(RecordFailureTest, AMessageReadingLikeAFullDiskIsNotOne) {
  const std::string no_space = std::strerror(ENOSPC);
  const std::string no_quota = std::strerror(EDQUOT);
  for (const Err& e : {Err{TIMER_AP_UNKNOWN, no_space + ": is not a directory"},
                       Internal("t/" + no_quota + ".txt: read: " + std::strerror(EIO)),
                       InvalidArgument("t/" + no_space +
                                       ": is a symbolic link (refused, never followed)"),
                       PermissionDenied("s3: PUT t/" + no_space + ": HTTP 403")}) {
    SCOPED_TRACE(e.message);
    const Recorded r = Record(true, "t/" + no_space, e);
    EXPECT_EQ(r.c.files_failed, 1);
    EXPECT_EQ(r.stop, "") << "the run was stopped for a full destination";
  }
}

// A run already stopped keeps its first reason; every failure is counted
// and the first kMaxListed are listed.
TEST(RecordFailureTest, CountsEveryFailureListsTheFirstAndKeepsTheFirstStop) {
  Request req;
  req.options.fail_on_quota_errors = true;
  Recorded r;
  for (size_t i = 0; i < kMaxListed + 5; ++i) {
    RecordFailure(req, "f" + std::to_string(i),
                  i == 0 ? Internal("read: boom") : ErrnoError("write", ENOSPC), &r.c,
                  &r.first_error, &r.errors, &r.stop);
  }
  EXPECT_EQ(r.c.files_failed, static_cast<int64_t>(kMaxListed + 5));
  EXPECT_EQ(r.first_error, "f0: read: boom");
  EXPECT_EQ(r.errors.size(), kMaxListed);
  EXPECT_NE(r.stop.find(": f1: write: "), std::string::npos) << r.stop;
}

// How a transfer's failures are classed (ABI 1.2): refused, reset or timed
// out connections and 5xx answers may pass (TRANSIENT); a refused key or
// credentials need a person (NEEDS_ATTENTION); a missing source, permission
// denied or a bad body would fail again (PERMANENT). A run is TRANSIENT only
// when every failed file was.
TEST(ClassOfTest, ClassesByTheErrorsOwnClassElseItsCode) {
  EXPECT_EQ(ClassOf(Unavailable("sftp: connection refused")),
            TIMER_AP_ERROR_CLASS_TRANSIENT);
  EXPECT_EQ(ClassOf(Err{TIMER_AP_DEADLINE_EXCEEDED, "timeout"}),
            TIMER_AP_ERROR_CLASS_TRANSIENT);
  EXPECT_EQ(ClassOf(Err{TIMER_AP_UNAUTHENTICATED, "bad key"}),
            TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
  EXPECT_EQ(ClassOf(NeedsAttention(PermissionDenied("sftp: key refused"))),
            TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
  EXPECT_EQ(ClassOf(NotFound("source_path: no such file")),
            TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_EQ(ClassOf(ErrnoError("open", EACCES)), TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_EQ(ClassOf(InvalidArgument("body: bad")), TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_EQ(ClassOf(Permanent(Unavailable("root is not a directory"))),
            TIMER_AP_ERROR_CLASS_PERMANENT);
}

TEST(ClassOfTest, ARunIsTransientOnlyWhenEveryFailedFileWas) {
  Request req;
  TransferCounters c;
  std::string first, stop;
  nlohmann::json errors = nlohmann::json::array();
  RecordFailure(req, "a", Unavailable("s3: HTTP 503"), &c, &first, &errors, &stop);
  RecordFailure(req, "b", Unavailable("s3: reset"), &c, &first, &errors, &stop);
  Outcome o = RunOutcome(c, stop, false, first);
  EXPECT_EQ(o.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(o.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
  RecordFailure(req, "c", NeedsAttention(PermissionDenied("key")), &c, &first, &errors,
                &stop);
  EXPECT_EQ(RunOutcome(c, stop, false, first).error_class,
            TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
  RecordFailure(req, "d", NotFound("gone"), &c, &first, &errors, &stop);
  EXPECT_EQ(RunOutcome(c, stop, false, first).error_class,
            TIMER_AP_ERROR_CLASS_PERMANENT);
}

}  // namespace
}  // namespace timer::plugins::transfer
