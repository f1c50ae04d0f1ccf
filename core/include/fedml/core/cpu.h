// Run-time CPU feature checks for kernels compiled twice: once for the baseline x86-64 the
// library is built for (SSE2, so that one binary runs on every x86-64 machine) and once with
// __attribute__((target("avx2"))), picked per call with CpuHasAvx2().
#pragma once

/// Defined where the compiler can build AVX2 copies of a kernel (GCC or Clang on x86-64); where it
/// is not, only the baseline copy exists and CpuHasAvx2() is false.
#if defined(__x86_64__) && defined(__GNUC__)
#define FEDML_AVX2_DISPATCH 1
#endif

/// Forces a kernel body into each of its ISA-specific copies (a body that is called instead would
/// be compiled for the baseline only).
#define FEDML_ALWAYS_INLINE inline __attribute__((always_inline))

namespace fedml::core {

/// Whether this CPU executes AVX2 instructions. Asked of the CPU once per process (cpuid), then
/// answered from a static; thread-safe. Always false without FEDML_AVX2_DISPATCH.
bool CpuHasAvx2();

}  // namespace fedml::core
