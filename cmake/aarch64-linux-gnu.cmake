# Cross-build for arm64 (aarch64) on a Debian/Ubuntu amd64 host with
# multiarch: gcc-aarch64-linux-gnu (crossbuild-essential-arm64), the :arm64
# -dev packages and pkgconf:arm64 (aarch64-linux-gnu-pkg-config), all
# installed by scripts/deps. Programs built here (the unit tests) run under
# qemu-user-static when it is installed; CTest starts them through it.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(PKG_CONFIG_EXECUTABLE aarch64-linux-gnu-pkg-config CACHE FILEPATH "pkg-config for arm64")

# Libraries and headers come from the arm64 side; programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)

# qemu starts the arm64 dynamic loader of libc6:arm64 by name instead of
# finding it with -L /usr/aarch64-linux-gnu: with -L, a child forked by a
# dynamically linked program (the tests that start tests/fake_aws.py) hangs
# under qemu-user 7.2. No binfmt_misc is needed (containers often lack it).
find_program(CWLOGD_QEMU_AARCH64 qemu-aarch64-static)
if(CWLOGD_QEMU_AARCH64 AND EXISTS /lib/ld-linux-aarch64.so.1)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CWLOGD_QEMU_AARCH64} /lib/ld-linux-aarch64.so.1)
endif()
