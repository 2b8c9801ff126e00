/* libllm private: run the hot element-wise loops with AVX-512 or AVX2 where
 * the CPU has it.
 *
 * The library is built for baseline x86-64 (SSE2), so it runs on any x86-64
 * CPU. LLM__SIMD_CLONES on a function makes GCC/Clang compile it three
 * times, for AVX-512 (avx512f), AVX2 and the baseline, and pick one at load
 * time (an ifunc), so the vectorised loops in it run 16 floats wide on
 * AVX-512 machines (v16 values; v8 ones stay 8 wide), 8 on AVX2 and 4
 * elsewhere. All versions do the same IEEE operations in the same order (no
 * FMA contraction under -std=c11), so they give the same bits. */
#ifndef LLM_PRIVATE_CPU_SIMD_H
#define LLM_PRIVATE_CPU_SIMD_H

#if defined(__x86_64__) && defined(__has_attribute) && !defined(LLM_NO_SIMD_CLONES)
#  if __has_attribute(target_clones)
#    define LLM__SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#  endif
#endif
#ifndef LLM__SIMD_CLONES
#  define LLM__SIMD_CLONES
#endif

/* Clones for kernels bound by multiply-adds (attention): x86-64-v4
 * (AVX-512) and v3 (AVX2 with FMA) and the baseline, for a file compiled
 * with -ffp-contract=fast (see the Makefile), so a * b + c is one fused
 * multiply-add in the first two. Other bits than the baseline clone, and
 * than LLM__SIMD_CLONES; still the same bits for any thread count and
 * batch within one clone. GCC 12 knows these levels; other compilers get
 * the plain clones. */
#if defined(__x86_64__) && !defined(LLM_NO_SIMD_CLONES) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 12
#  define LLM__SIMD_CLONES_FMA __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#  define LLM__SIMD_CLONES_FMA LLM__SIMD_CLONES
#endif

/* Eight floats as one value: GCC and Clang compile its arithmetic to one AVX
 * instruction, or to two SSE ones in the baseline build, lane by lane either
 * way (the vectoriser does not turn partial-sum arrays of plain C into
 * registers reliably). Loads and stores go through memcpy: no alignment
 * assumed. (Macros: a function taking or returning a v8 draws GCC's note
 * that AVX changes how such values are passed.) */
typedef float v8 __attribute__((vector_size(32)));
#define V8_LD(dst, p) __builtin_memcpy(&(dst), (p), sizeof(v8))
#define V8_ST(p, src) __builtin_memcpy((p), &(src), sizeof(v8))
/* Sixteen floats: one AVX-512 instruction in the avx512f clone, two AVX2
 * ones or four SSE ones in the others, lane by lane (the same bits). */
typedef float v16 __attribute__((vector_size(64)));
#define V16_LD(dst, p) __builtin_memcpy(&(dst), (p), sizeof(v16))
#define V16_ST(p, src) __builtin_memcpy((p), &(src), sizeof(v16))
/* The eight lanes of s (a v8 or an array) summed in a fixed tree, the same
 * order on every thread and in both builds. */
#define SUM8(s) ((((s)[0] + (s)[4]) + ((s)[1] + (s)[5])) + (((s)[2] + (s)[6]) + ((s)[3] + (s)[7])))

#endif /* LLM_PRIVATE_CPU_SIMD_H */
