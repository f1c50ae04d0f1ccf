include(CMakePackageConfigHelpers)

install(DIRECTORY core/include/ api/include/ algorithms/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/generated/fedml/config.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fedml)
set(FEDML_INSTALL_TARGETS fedml_proto fedml_core fedml_algorithms fedml_api)
if(FEDML_WITH_GRPC)
  list(APPEND FEDML_INSTALL_TARGETS fedml_grpc_proto)
endif()
install(TARGETS ${FEDML_INSTALL_TARGETS}
        EXPORT fedmlTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS fedml_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT fedmlTargets NAMESPACE fedml:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedml)
configure_package_config_file(cmake/fedmlConfig.cmake.in
  ${PROJECT_BINARY_DIR}/fedmlConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedml)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/fedmlConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/fedmlConfig.cmake ${PROJECT_BINARY_DIR}/fedmlConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fedml)
