# timer_proto_library(NAME ROOT DIR PROTOS a.proto b.proto ...
#                     [IMPORTS dir...] [DEPS lib...])
# Generates C++ and gRPC code for PROTOS (paths relative to DIR, which is the
# protoc import root) into the build tree at build time, and builds them into
# the static library NAME. IMPORTS are further import roots (for protos
# PROTOS import but NAME does not build), DEPS the libraries that build those.
# Generated files are never committed.
function(timer_proto_library name)
  cmake_parse_arguments(ARG "" "ROOT" "PROTOS;IMPORTS;DEPS" ${ARGN})
  set(import_args)
  foreach(dir ${ARG_IMPORTS})
    list(APPEND import_args --proto_path=${dir})
  endforeach()
  set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/${name}_gen)
  file(MAKE_DIRECTORY ${gen_dir})
  get_target_property(grpc_cpp_plugin gRPC::grpc_cpp_plugin LOCATION)
  set(srcs)
  foreach(rel ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(outs
      ${gen_dir}/${base}.pb.cc ${gen_dir}/${base}.pb.h
      ${gen_dir}/${base}.grpc.pb.cc ${gen_dir}/${base}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc
        --proto_path=${ARG_ROOT}
        ${import_args}
        --cpp_out=${gen_dir}
        --grpc_out=${gen_dir}
        --plugin=protoc-gen-grpc=${grpc_cpp_plugin}
        ${rel}
      DEPENDS ${ARG_ROOT}/${rel} protobuf::protoc
      WORKING_DIRECTORY ${ARG_ROOT}
      COMMENT "protoc ${rel}")
    list(APPEND srcs ${outs})
  endforeach()
  add_library(${name} STATIC ${srcs})
  # SYSTEM: the generated code is protoc's, not ours; its warnings (gRPC 1.51's
  # callback services hide overloads: -Woverloaded-virtual) are not ours to fix.
  target_include_directories(${name} SYSTEM PUBLIC ${gen_dir})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} protobuf::libprotobuf gRPC::grpc++)
  target_compile_options(${name} PRIVATE -w)
endfunction()
