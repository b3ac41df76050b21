/* backoff.h -- pure retry-delay arithmetic (no clock, no sleep).
 *
 * Delays for "everything failed, try again" use capped exponential growth
 * with full jitter; waits for "everything is cooling" add a small jitter so
 * that many waiting callers do not hit the freed endpoint in one instant.
 * Randomness comes in as a 32-bit value so tests are deterministic.
 */
#ifndef CONVBI_LLM_BACKOFF_H
#define CONVBI_LLM_BACKOFF_H

#include <stdint.h>

/* Delay before round `round` (0-based) of retrying the same endpoints:
 * uniform in [base*2^round / 2, base*2^round], capped at cap_ms. */
int64_t backoff_delay_ms(int round, int64_t base_ms, int64_t cap_ms, uint32_t rnd);
/* A wait until an endpoint frees up, plus up to 10 % (at most 100 ms) of
 * jitter. */
int64_t backoff_cooling_wait_ms(int64_t wait_ms, uint32_t rnd);
/* A small thread-safe pseudo-random generator (xorshift, seeded per
 * thread from the clock and thread id). */
uint32_t backoff_random(void);

#endif
