# TIMER_SANITIZE: build every target with sanitizers.
#
#   -DTIMER_SANITIZE=address,undefined   AddressSanitizer (with LeakSanitizer)
#                                        + UndefinedBehaviorSanitizer
#   -DTIMER_SANITIZE=thread              ThreadSanitizer
#
# The flags are added with add_compile_options/add_link_options before any
# target exists, so libraries, timerd, timer, the provider plugins (MODULEs
# dlopen'ed by a timerd built the same way), tests and benchmarks all get
# them. UBSan does not recover: its first report aborts the process, so a
# report fails the test. A sanitizer build installs into its own prefix
# (<build>/install) unless CMAKE_INSTALL_PREFIX is given; the end-to-end
# tests install into <build>/e2e-prefix as in every build.
#
# ThreadSanitizer and Debian's libraries: Abseil and gRPC are not built with
# -fsanitize=thread. timer_sanitizer_finalize() links
# tests/sanitizers/tsan_absl_mutex.c into every executable so that absl::Mutex
# locking (and absl::Notification) is visible to TSan; see that file and docs/RELIABILITY.md.

set(_timer_san_known address undefined thread)
string(REPLACE "," ";" TIMER_SANITIZE_LIST "${TIMER_SANITIZE}")
foreach(s IN LISTS TIMER_SANITIZE_LIST)
  if(NOT s IN_LIST _timer_san_known)
    message(FATAL_ERROR "TIMER_SANITIZE: unknown sanitizer '${s}' "
      "(use address,undefined or thread)")
  endif()
endforeach()
if("thread" IN_LIST TIMER_SANITIZE_LIST AND "address" IN_LIST TIMER_SANITIZE_LIST)
  message(FATAL_ERROR "TIMER_SANITIZE: thread and address cannot be combined")
endif()

if(TIMER_SANITIZE_LIST)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    message(FATAL_ERROR "TIMER_SANITIZE needs GCC or Clang")
  endif()
  list(JOIN TIMER_SANITIZE_LIST "," _timer_san_csv)
  set(_timer_san_flags -fsanitize=${_timer_san_csv} -fno-omit-frame-pointer)
  if("undefined" IN_LIST TIMER_SANITIZE_LIST)
    # float-cast-overflow is not part of GCC's -fsanitize=undefined.
    list(APPEND _timer_san_flags -fsanitize=float-cast-overflow
      -fno-sanitize-recover=all)
  endif()
  add_compile_options(${_timer_san_flags})
  add_link_options(${_timer_san_flags})
  if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
    set(CMAKE_INSTALL_PREFIX "${CMAKE_BINARY_DIR}/install" CACHE PATH
      "Install prefix (a sanitizer build never installs into /usr/local)" FORCE)
  endif()
  message(STATUS "Sanitizers: ${_timer_san_flags}")
endif()

if("thread" IN_LIST TIMER_SANITIZE_LIST)
  # The mangled name of Abseil's inline namespace (Debian 12: debian3).
  file(STRINGS /usr/include/absl/base/options.h _timer_absl_ns_line
    REGEX "^#define ABSL_OPTION_INLINE_NAMESPACE_NAME ")
  string(REGEX REPLACE ".* " "" _timer_absl_ns "${_timer_absl_ns_line}")
  if(NOT _timer_absl_ns)
    message(FATAL_ERROR "TIMER_SANITIZE=thread: no Abseil inline namespace in "
      "/usr/include/absl/base/options.h")
  endif()
  string(LENGTH "${_timer_absl_ns}" _timer_absl_ns_len)
  add_library(timer_tsan_absl_mutex OBJECT
    ${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan_absl_mutex.c)
  target_compile_definitions(timer_tsan_absl_mutex PRIVATE
    "TIMER_ABSL_NS=\"${_timer_absl_ns_len}${_timer_absl_ns}\"")
endif()

# _timer_executables(<dir> <out-var>): every executable target under <dir>.
function(_timer_executables dir out)
  set(found)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "EXECUTABLE")
      list(APPEND found ${t})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _timer_executables(${sub} sub_found)
    list(APPEND found ${sub_found})
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

# Called once at the end of the top-level CMakeLists.txt, when every target
# exists.
function(timer_sanitizer_finalize)
  if(NOT "thread" IN_LIST TIMER_SANITIZE_LIST)
    return()
  endif()
  _timer_executables(${PROJECT_SOURCE_DIR} exes)
  foreach(t IN LISTS exes)
    target_link_libraries(${t} PRIVATE timer_tsan_absl_mutex ${CMAKE_DL_LIBS})
    # Export the interposed absl symbols from the executable so that calls
    # made inside libabsl_synchronization and libgrpc resolve to them.
    target_link_options(${t} PRIVATE
      "LINKER:--export-dynamic-symbol=_ZN4absl*5Mutex*"
      "LINKER:--export-dynamic-symbol=_ZN4absl*7CondVar*"
      "LINKER:--export-dynamic-symbol=_ZN4absl*12Notification*"
      "LINKER:--export-dynamic-symbol=_ZNK4absl*12Notification*")
  endforeach()
endfunction()
