/* libllm private: run the hot element-wise loops with AVX2 where the CPU has it.
 *
 * The library is built for baseline x86-64 (SSE2), so it runs on any x86-64
 * CPU. LLM__SIMD_CLONES on a function makes GCC/Clang compile it twice, for
 * AVX2 and for the baseline, and pick one at load time (an ifunc), so the
 * vectorised loops in it run 8 floats wide on AVX2 machines and 4 wide
 * elsewhere. Both versions do the same IEEE operations in the same order (no
 * FMA contraction under -std=c11), so they give the same bits. */
#ifndef LLM_PRIVATE_CPU_SIMD_H
#define LLM_PRIVATE_CPU_SIMD_H

#if defined(__x86_64__) && defined(__has_attribute) && !defined(LLM_NO_SIMD_CLONES)
#  if __has_attribute(target_clones)
#    define LLM__SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#  endif
#endif
#ifndef LLM__SIMD_CLONES
#  define LLM__SIMD_CLONES
#endif

#endif /* LLM_PRIVATE_CPU_SIMD_H */
