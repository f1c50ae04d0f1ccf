#include "fedml/core/cpu.h"

namespace fedml::core {

bool CpuHasAvx2() {
#ifdef FEDML_AVX2_DISPATCH
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

}  // namespace fedml::core
