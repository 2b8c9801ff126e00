/* libllm private: the counter-based random number generator.
 *
 * Value i of stream `seed` is a pure function of (seed, i), so a kernel on
 * any backend, split across any number of threads, draws the same numbers:
 * dropout masks agree between CPU and GPU and training is reproducible. */
#ifndef LLM_PRIVATE_RNG_H
#define LLM_PRIVATE_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#  define LLM__HD __host__ __device__
#else
#  define LLM__HD
#endif

/* splitmix64's finaliser: a bijective mix with good avalanche. */
static inline LLM__HD uint64_t llm__rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline LLM__HD uint64_t llm__rng_u64(uint64_t seed, uint64_t counter) {
    return llm__rng_mix(llm__rng_mix(seed + 0x9e3779b97f4a7c15ULL) ^ (counter * 0xd1342543de82ef95ULL + 1));
}

/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
static inline LLM__HD float llm__rng_uniform(uint64_t seed, uint64_t counter) {
    return (float)(llm__rng_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Derives an independent stream key, e.g. per layer or per epoch. */
static inline LLM__HD uint64_t llm__rng_derive(uint64_t seed, uint64_t stream) {
    return llm__rng_mix(seed ^ llm__rng_mix(stream + 0x632be59bd9b4e019ULL));
}

#endif /* LLM_PRIVATE_RNG_H */
