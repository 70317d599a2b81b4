# Linking for a package built on one distribution and installed on another
# (the RPM that scripts/package builds on Debian for Amazon Linux 2023).
# Both options are off by default: a native build links as before.
#
# CWLOGD_STATIC_INIH: inih has no soname the distributions agree on (Debian
# builds libinih.so.1, upstream and Fedora/Amazon Linux libinih.so.0), so
# the agent takes it from libinih.a.
#
# CWLOGD_UNVERSIONED_CURL: Debian's libcurl tags every symbol with the
# version CURL_OPENSSL_4, which the linker copies into the binary and
# rpmbuild into a requirement libcurl.so.4(CURL_OPENSSL_4)(64bit) that no
# other distribution's libcurl provides (upstream curl defines no symbol
# versions). The binary is linked against a stand-in libcurl.so.4 that
# defines the same functions without versions, so it needs only the soname;
# at run time the real libcurl is loaded (unversioned references bind to
# its default versions). The stand-in is never installed.
#
# Defines the targets cwlogd_inih and cwlogd_curl, and sets _cwlogd_deps to
# the pkg-config modules still linked the usual way.

option(CWLOGD_STATIC_INIH "Link inih from libinih.a (for packages built on one distribution for another)" OFF)
option(CWLOGD_UNVERSIONED_CURL
  "Link against a stand-in libcurl.so.4 without symbol versions (for packages built on one distribution for another)" OFF)

set(_cwlogd_deps openssl libsystemd sqlite3 jansson zlib)

add_library(cwlogd_inih INTERFACE)
if(CWLOGD_STATIC_INIH)
  pkg_check_modules(INIH REQUIRED inih)
  pkg_get_variable(_inih_libdir inih libdir)
  if(NOT EXISTS "${_inih_libdir}/libinih.a")
    message(FATAL_ERROR "CWLOGD_STATIC_INIH: ${_inih_libdir}/libinih.a not found (Debian's libinih-dev ships it)")
  endif()
  target_include_directories(cwlogd_inih INTERFACE ${INIH_INCLUDE_DIRS})
  target_compile_options(cwlogd_inih INTERFACE ${INIH_CFLAGS_OTHER})
  target_link_libraries(cwlogd_inih INTERFACE "${_inih_libdir}/libinih.a")
else()
  list(APPEND _cwlogd_deps inih)
endif()

add_library(cwlogd_curl INTERFACE)
if(CWLOGD_UNVERSIONED_CURL)
  pkg_check_modules(CURL REQUIRED libcurl)
  pkg_get_variable(_curl_libdir libcurl libdir)
  set(_curl_so "${_curl_libdir}/libcurl.so")
  if(NOT EXISTS "${_curl_so}")
    message(FATAL_ERROR "CWLOGD_UNVERSIONED_CURL: ${_curl_so} not found")
  endif()
  execute_process(COMMAND ${CMAKE_NM} -D --defined-only "${_curl_so}"
    OUTPUT_VARIABLE _curl_syms RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "CWLOGD_UNVERSIONED_CURL: ${CMAKE_NM} -D ${_curl_so} failed")
  endif()
  string(REGEX MATCHALL "[^\n]* T curl_[A-Za-z0-9_]+" _curl_funcs "${_curl_syms}")
  if(NOT _curl_funcs)
    message(FATAL_ERROR "CWLOGD_UNVERSIONED_CURL: no curl_* functions in ${_curl_so}")
  endif()
  set(_stub "/* Generated from ${_curl_so}: link-time stand-in, never run. */\n")
  foreach(line ${_curl_funcs})
    string(REGEX REPLACE ".* T " "" name "${line}")
    string(APPEND _stub "void ${name}(void);\nvoid ${name}(void) {}\n")
  endforeach()
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/curl-stub/curl_stub.c CONTENT "${_stub}")
  add_library(cwlogd_curl_stub SHARED ${CMAKE_BINARY_DIR}/curl-stub/curl_stub.c)
  set_target_properties(cwlogd_curl_stub PROPERTIES
    OUTPUT_NAME curl SOVERSION 4
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/curl-stub)
  target_include_directories(cwlogd_curl INTERFACE ${CURL_INCLUDE_DIRS})
  target_compile_options(cwlogd_curl INTERFACE ${CURL_CFLAGS_OTHER})
  target_link_libraries(cwlogd_curl INTERFACE cwlogd_curl_stub)
  # Programs in the build tree must load the real libcurl, not the stand-in.
  set(CMAKE_SKIP_BUILD_RPATH ON)
else()
  list(APPEND _cwlogd_deps libcurl)
endif()
