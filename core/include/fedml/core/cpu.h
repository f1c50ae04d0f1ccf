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

/// Defines `ret name params`, which runs name##Body args compiled for AVX2 when the CPU has it and
/// for the baseline otherwise; name##Body must be FEDML_ALWAYS_INLINE. params is the parenthesised
/// parameter list, args the parenthesised argument names.
#ifdef FEDML_AVX2_DISPATCH
#define FEDML_DEFINE_KERNEL(ret, name, params, args)                                \
  ret name##Baseline params { return name##Body args; }                             \
  __attribute__((target("avx2"))) ret name##Avx2 params { return name##Body args; } \
  ret name params { return ::fedml::core::CpuHasAvx2() ? name##Avx2 args : name##Baseline args; }
#else
#define FEDML_DEFINE_KERNEL(ret, name, params, args) \
  ret name params { return name##Body args; }
#endif

namespace fedml::core {

/// Whether this CPU executes AVX2 instructions. Asked of the CPU once per process (cpuid), then
/// answered from a static; thread-safe. Always false without FEDML_AVX2_DISPATCH.
bool CpuHasAvx2();

}  // namespace fedml::core
