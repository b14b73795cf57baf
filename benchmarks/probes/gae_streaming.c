/* Probe, not part of rlgrad: how fast can the GAE scan run from memory on this CPU?
 *
 * Three hand-vectorized (AVX-512) float32 versions of the GAE scan, built and timed by
 * gae_streaming.py. Each needs B to be a multiple of 16 and 64-byte aligned rows.
 *   plain:      reads A_{t+1} back from out[t+1], ordinary stores (the numba kernel until the
 *               sixth session);
 *   stream:     keeps A_{t+1} in a private row and writes out[t] with non-temporal stores, which
 *               skip the read-for-ownership of the output lines;
 *   stream_pf:  as stream, and prefetches row t-1 of every input while computing row t, because the
 *               hardware prefetcher does not cross into the previous 4 KiB page (what
 *               rlgrad/_scans.py does since the sixth session).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline __m512 flag_complement(const uint8_t *flags) {
    __m512i wide = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)flags));
    return _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_cvtepi32_ps(wide));
}

static inline __m512 advantage(const float *r, const float *v, const float *nv, const uint8_t *te,
                               const uint8_t *tr, __m512 later, float gamma, float trace) {
    __m512 alive = flag_complement(te);
    __m512 carry = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(trace), alive), flag_complement(tr));
    __m512 bootstrap = _mm512_mul_ps(_mm512_set1_ps(gamma), alive);
    __m512 delta = _mm512_sub_ps(_mm512_fmadd_ps(bootstrap, _mm512_loadu_ps(nv), _mm512_loadu_ps(r)),
                                 _mm512_loadu_ps(v));
    return _mm512_fmadd_ps(carry, later, delta);
}

void gae_plain(const float *r, const float *v, const float *nv, const uint8_t *te, const uint8_t *tr,
               float gamma, float trace, float *out, long steps, long batch) {
    for (long t = steps - 1; t >= 0; t--) {
        long row = t * batch;
        for (long b = 0; b < batch; b += 16) {
            __m512 later = t == steps - 1 ? _mm512_setzero_ps() : _mm512_loadu_ps(out + row + batch + b);
            __m512 a = advantage(r + row + b, v + row + b, nv + row + b, te + row + b, tr + row + b,
                                 later, gamma, trace);
            _mm512_storeu_ps(out + row + b, a);
        }
    }
}

static void gae_streamed(const float *r, const float *v, const float *nv, const uint8_t *te,
                         const uint8_t *tr, float gamma, float trace, float *out, long steps,
                         long batch, float *later, int prefetch) {
    memset(later, 0, batch * sizeof(float));
    for (long t = steps - 1; t >= 0; t--) {
        long row = t * batch;
        for (long b = 0; b < batch; b += 16) {
            if (prefetch && t > 0) {
                long earlier = row - batch + b;
                _mm_prefetch((const char *)(r + earlier), _MM_HINT_T1);
                _mm_prefetch((const char *)(v + earlier), _MM_HINT_T1);
                _mm_prefetch((const char *)(nv + earlier), _MM_HINT_T1);
                if (b % 64 == 0) {
                    _mm_prefetch((const char *)(te + earlier), _MM_HINT_T1);
                    _mm_prefetch((const char *)(tr + earlier), _MM_HINT_T1);
                }
            }
            __m512 a = advantage(r + row + b, v + row + b, nv + row + b, te + row + b, tr + row + b,
                                 _mm512_load_ps(later + b), gamma, trace);
            _mm512_store_ps(later + b, a);
            _mm512_stream_ps(out + row + b, a);
        }
    }
    _mm_sfence();
}

void gae_stream(const float *r, const float *v, const float *nv, const uint8_t *te, const uint8_t *tr,
                float gamma, float trace, float *out, long steps, long batch, float *later) {
    gae_streamed(r, v, nv, te, tr, gamma, trace, out, steps, batch, later, 0);
}

void gae_stream_pf(const float *r, const float *v, const float *nv, const uint8_t *te,
                   const uint8_t *tr, float gamma, float trace, float *out, long steps, long batch,
                   float *later) {
    gae_streamed(r, v, nv, te, tr, gamma, trace, out, steps, batch, later, 1);
}
