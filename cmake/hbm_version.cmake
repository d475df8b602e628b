# The version lives in one place, src/hbm_runtime/_version.py. hbm_read_version(file) sets
# HBM_VERSION_FULL (as written there, e.g. 0.2.0rc1: what the extension reports) and
# HBM_VERSION (its leading numbers: project() takes nothing else).
function(hbm_read_version file)
  file(STRINGS "${file}" line REGEX "^__version__")
  string(REGEX MATCH "\"([^\"]+)\"" quoted "${line}")
  set(full "${CMAKE_MATCH_1}")
  string(REGEX MATCH "^[0-9]+(\\.[0-9]+)*" numbers "${full}")
  if(NOT full OR NOT numbers)
    message(FATAL_ERROR "no __version__ = \"X.Y.Z...\" in ${file}")
  endif()
  set(HBM_VERSION_FULL "${full}" PARENT_SCOPE)
  set(HBM_VERSION "${numbers}" PARENT_SCOPE)
endfunction()

# cmake -DHBM_VERSION_FILE=path -P cmake/hbm_version.cmake prints "full;numbers" (for tests).
if(CMAKE_SCRIPT_MODE_FILE AND HBM_VERSION_FILE)
  hbm_read_version("${HBM_VERSION_FILE}")
  message("${HBM_VERSION_FULL};${HBM_VERSION}")
endif()
