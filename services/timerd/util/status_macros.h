// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr.
//
// Abseil 20220623 ships no status_macros.h, so the project keeps this one
// small pair. Both evaluate their argument exactly once.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TIMER_STATUS_CONCAT_INNER_(a, b) a##b
#define TIMER_STATUS_CONCAT_(a, b) TIMER_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if it is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status timer_status_ = (expr);         \
    if (!timer_status_.ok()) return timer_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns x from a StatusOr, or
// returns its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  TIMER_ASSIGN_OR_RETURN_IMPL_(TIMER_STATUS_CONCAT_(timer_statusor_, __LINE__), lhs, expr)

#define TIMER_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
