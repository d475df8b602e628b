# Cross compilation for 64-bit Arm Linux (RDK S100 board images, aarch64 wheels).
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64.cmake \
#         -DHBM_SYSROOT=/path/to/bsp/rootfs
#
# HBM_SYSROOT (cache variable, or the environment variable of the same name): the target's
#   root file system (a BSP sysroot, or a Debian arm64 root as tools/cross/build_aarch64.sh
#   makes). Libraries, headers and Python's headers are searched there only. Optional: without
#   it the cross compiler's own default sysroot is used (Debian: /usr/aarch64-linux-gnu).
# HBM_CROSS_PREFIX (cache variable or environment): the compiler prefix, default
#   "aarch64-linux-gnu-" (Debian/Ubuntu g++-aarch64-linux-gnu). A BSP toolchain usually has
#   its own, e.g. "/opt/toolchain/bin/aarch64-none-linux-gnu-".
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

# try_compile projects see these too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES HBM_SYSROOT HBM_CROSS_PREFIX)

if(NOT DEFINED HBM_CROSS_PREFIX)
  if(DEFINED ENV{HBM_CROSS_PREFIX} AND NOT "$ENV{HBM_CROSS_PREFIX}" STREQUAL "")
    set(HBM_CROSS_PREFIX "$ENV{HBM_CROSS_PREFIX}")
  else()
    set(HBM_CROSS_PREFIX "aarch64-linux-gnu-")
  endif()
endif()
set(HBM_CROSS_PREFIX "${HBM_CROSS_PREFIX}" CACHE STRING "Cross compiler prefix (aarch64-linux-gnu-)")

if(NOT DEFINED HBM_SYSROOT AND DEFINED ENV{HBM_SYSROOT} AND NOT "$ENV{HBM_SYSROOT}" STREQUAL "")
  set(HBM_SYSROOT "$ENV{HBM_SYSROOT}")
endif()
set(HBM_SYSROOT "${HBM_SYSROOT}" CACHE PATH "Target root file system (BSP sysroot)")

set(CMAKE_C_COMPILER "${HBM_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${HBM_CROSS_PREFIX}g++")
find_program(_hbm_cross_ar "${HBM_CROSS_PREFIX}ar")
find_program(_hbm_cross_ranlib "${HBM_CROSS_PREFIX}ranlib")
find_program(_hbm_cross_strip "${HBM_CROSS_PREFIX}strip")
if(_hbm_cross_ar)
  set(CMAKE_AR "${_hbm_cross_ar}" CACHE FILEPATH "")
endif()
if(_hbm_cross_ranlib)
  set(CMAKE_RANLIB "${_hbm_cross_ranlib}" CACHE FILEPATH "")
endif()
if(_hbm_cross_strip)
  set(CMAKE_STRIP "${_hbm_cross_strip}" CACHE FILEPATH "")
endif()

if(HBM_SYSROOT)
  if(NOT IS_DIRECTORY "${HBM_SYSROOT}/usr/include")
    message(FATAL_ERROR "HBM_SYSROOT='${HBM_SYSROOT}' has no usr/include: not a target root file system")
  endif()
  set(CMAKE_SYSROOT "${HBM_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH "${HBM_SYSROOT}")
  # Debian/Ubuntu roots keep libraries in multiarch folders; usrmerge roots link lib -> usr/lib.
  set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
endif()

# Programs (python, ninja) come from the build machine; libraries and headers from the
# target only. CMake packages: the target first, then the build machine, where pip's build
# environment has nanobind (sources and CMake scripts only, nothing prebuilt).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# AArch64 programs (try_run, ctest) run under qemu-user; others, as the build machine's Python
# that FindPython runs through the emulator when cross compiling (policy CMP0190), natively.
set(CMAKE_CROSSCOMPILING_EMULATOR "${CMAKE_CURRENT_LIST_DIR}/aarch64-run.sh;--sysroot=${HBM_SYSROOT}")
