"""Macros mirroring the CMake helper functions of the same names.

timer_proto_library  cmake/TimerProtos.cmake
timer_add_provider   plugins/CMakeLists.txt
timer_add_fake_provider, timer_unit_test, timer_e2e_test
                     tests/*/CMakeLists.txt
"""

# The project's warning flags (add_compile_options in the root CMakeLists.txt).
TIMER_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
]

# Where the plugin modules are built, relative to the bin directory and to
# the runfiles root of whatever depends on them: the installed layout.
PLUGIN_DIR = "lib/timer/plugins"

# The install prefix the e2e tests drive (built by :e2e_install), relative to
# their runfiles root, which is their working directory.
E2E_PREFIX = "e2e-prefix"

# The run-time test timeouts are CMake's (120 s); Bazel's nearest is
# "moderate" (300 s).
_TEST_TIMEOUT = "moderate"

def _proto_label(root, rel):
    # `root` is a folder of this package, or a repository's ("@repo//:").
    return root + rel if root.endswith(":") else root + "/" + rel

def _strip_suffix(s, suffix):
    return s[:-len(suffix)] if s.endswith(suffix) else s

def timer_proto_library(name, root, protos, imports = {}, deps = []):
    """C++ and gRPC code for `protos` (paths relative to `root`, the protoc
    import root), generated at build time by the system protoc and
    grpc_cpp_plugin into `<name>_gen/`, built into the cc_library `name`.
    `imports` maps labels of protos they import (from another repository)
    to their import paths; `deps` are the libraries that build those (as
    CMake's IMPORTS and DEPS)."""
    gen_dir = name + "_gen"
    outs = []
    for rel in protos:
        base = _strip_suffix(rel, ".proto")
        for ext in [".pb.cc", ".pb.h", ".grpc.pb.cc", ".grpc.pb.h"]:
            outs.append(gen_dir + "/" + base + ext)

    # protoc wants the import root on disk; derive it from the first proto's
    # path so that this also works when the workspace is an external
    # repository of another one. Each imported proto's root likewise.
    cmd = " ".join([
        "first=$(execpath %s);" % _proto_label(root, protos[0]),
        "root=$${first%%/%s};" % protos[0],
    ] + [
        "imp%d=$(execpath %s); imp%d=$${imp%d%%/%s};" % (i, label, i, i, rel)
        for i, (label, rel) in enumerate(imports.items())
    ] + [
        "/usr/bin/protoc",
        "--proto_path=$$root",
    ] + [
        "--proto_path=$$imp%d" % i
        for i in range(len(imports))
    ] + [
        "--cpp_out=$(RULEDIR)/" + gen_dir,
        "--grpc_out=$(RULEDIR)/" + gen_dir,
        "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin",
    ] + [
        "$$root/" + rel
        for rel in protos
    ])
    native.genrule(
        name = gen_dir,
        srcs = [_proto_label(root, rel) for rel in protos] + list(imports.keys()),
        outs = outs,
        cmd = cmd,
        message = "protoc " + " ".join(protos),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = [gen_dir],
        copts = ["-w"],
        deps = deps + [
            "//system:protobuf",
            "//system:grpcpp",
        ],
    )

def timer_add_provider(name, srcs, deps = []):
    """The provider module <name>.so exporting only timer_ap_get_api.

    The rule `timer_ap_<name>` builds it (as in CMake, where OUTPUT_NAME makes
    it <name>.so); the file is PLUGIN_DIR/<name>.so under the bin directory."""
    out = "%s/%s.so" % (PLUGIN_DIR, name)
    native.cc_binary(
        name = out,
        srcs = srcs,
        linkshared = True,
        copts = TIMER_COPTS + [
            "-fvisibility=hidden",
            "-fvisibility-inlines-hidden",
        ],
        additional_linker_inputs = ["plugins/exports.map"],
        linkopts = [
            "-Wl,--version-script=$(location plugins/exports.map)",
            "-Wl,-z,defs",
        ],
        deps = deps + [":timer_ap_support"],
    )
    native.alias(
        name = "timer_ap_" + name,
        actual = ":" + out,
    )

def timer_add_fake_provider(name, defines = [], dir = "fakes"):
    """A fake provider <dir>/<name>.so from tests/support/fake_plugin.c,
    built by the rule `name`."""
    out = "%s/%s.so" % (dir, name)
    native.cc_binary(
        name = out,
        testonly = True,
        srcs = ["tests/support/fake_plugin.c"],
        linkshared = True,
        copts = TIMER_COPTS + ["-fvisibility=hidden"],
        local_defines = defines,
        deps = [":timer_ap_abi"],
    )
    native.alias(
        name = name,
        actual = ":" + out,
        testonly = True,
    )

def _source_path(path):
    """`path`, a directory of this workspace, as the compiler sees it from
    the execution root: prefixed with external/<name>/ when this workspace
    is an external repository of another one."""
    repo = native.repository_name()
    if repo == "@":
        return path
    return "external/%s/%s" % (repo[1:], path)

def timer_gtest(name, srcs, deps = [], data = [], local_defines = [], env = None, includes = [],
                tags = []):
    """A GoogleTest executable linked with gmock and gtest_main. `includes`
    are private include directories (CMake's target_include_directories
    PRIVATE); their headers must be in `srcs`. `tags` are the test's
    (no-sandbox: it starts a PostgreSQL cluster as the postgres user, which
    the sandbox's user namespace cannot)."""
    native.cc_test(
        name = name,
        srcs = srcs,
        copts = TIMER_COPTS + ["-I" + _source_path(d) for d in includes],
        local_defines = local_defines,
        deps = deps + ["//system:gtest_main"],
        data = data,
        env = env,
        linkstatic = True,
        timeout = _TEST_TIMEOUT,
        tags = tags,
    )

def timer_unit_test(path, deps, hdrs = [], includes = [], data = [], local_defines = [],
                    tags = []):
    """tests/unit/<path>.cc into the test named for its file (path's last
    component), as CMake's timer_unit_test; tests/support is on the include
    path and its headers are available. `hdrs` are further headers it
    includes from the directories `includes`."""
    timer_gtest(
        name = path.split("/")[-1],
        srcs = ["tests/unit/%s.cc" % path] + native.glob(["tests/support/*.h"]) + hdrs,
        deps = deps,
        data = data,
        local_defines = local_defines,
        includes = ["tests/support"] + includes,
        tags = tags,
    )

def timer_e2e_test(name, deps = [], hdrs = [], includes = [], env = {}, data = [],
                   local_defines = [], tags = []):
    """tests/e2e/<name>.cc against the installed build (:e2e_install);
    `hdrs` and `includes` as for timer_unit_test; `env` adds variables."""
    test_env = {"TIMER_INSTALL_PREFIX": E2E_PREFIX}
    test_env.update(env)
    timer_gtest(
        name = name,
        srcs = ["tests/e2e/%s.cc" % name, "tests/e2e/cli_fixture.h"] + hdrs,
        deps = deps + [":e2e_support"],
        data = [":e2e_install"] + data,
        local_defines = local_defines,
        env = test_env,
        includes = includes,
        tags = tags,
    )
