# Helpers that keep the per-directory CMakeLists short.
# mesh_module(NAME SOURCES ... DEPS ...): one static library per src/lib module.
# Modules include each other as "<module>/<header>.h" from src/lib.
function(mesh_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${M_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src/lib)
  target_link_libraries(${name} PUBLIC ${M_DEPS})
endfunction()

# mesh_unit_test(NAME SOURCES ... DEPS ...): a cmocka binary registered with ctest (label unit).
function(mesh_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  target_link_libraries(${name} PRIVATE ${T_DEPS} PkgConfig::CMOCKA)
  target_compile_definitions(${name} PRIVATE MESH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit)
endfunction()

# mesh_fuzzer(NAME SOURCES ... DEPS ...): a harness built with standalone_main.c that replays
# fuzz/corpus/NAME in ctest (label fuzz). Built with clang -fsanitize=fuzzer it is a libFuzzer target.
function(mesh_fuzzer name)
  cmake_parse_arguments(F "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${F_SOURCES} ${PROJECT_SOURCE_DIR}/fuzz/standalone_main.c)
  target_link_libraries(${name} PRIVATE ${F_DEPS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  add_test(NAME fuzz/${name} COMMAND ${name} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${name})
  set_tests_properties(fuzz/${name} PROPERTIES LABELS fuzz)
endfunction()
