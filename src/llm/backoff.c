/* backoff.c -- retry delays with jitter (see backoff.h). */
#include "llm/backoff.h"

#include <pthread.h>

#include "util/clock.h"

int64_t backoff_delay_ms(int round, int64_t base_ms, int64_t cap_ms, uint32_t rnd)
{
	if (round < 0)
		round = 0;
	int64_t d = base_ms;
	for (int i = 0; i < round && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	int64_t half = d / 2;
	return half + (int64_t)(rnd % (uint32_t)(d - half + 1));
}

int64_t backoff_cooling_wait_ms(int64_t wait_ms, uint32_t rnd)
{
	if (wait_ms < 0)
		wait_ms = 0;
	int64_t span = wait_ms / 10;
	if (span > 100)
		span = 100;
	if (span < 5)
		span = 5;
	return wait_ms + (int64_t)(rnd % (uint32_t)(span + 1));
}

uint32_t backoff_random(void)
{
	static _Thread_local uint32_t s;
	if (!s) {
		s = (uint32_t)clock_mono_ns() ^ (uint32_t)(uintptr_t)pthread_self() ^ 0x9e3779b9u;
		if (!s)
			s = 1;
	}
	s ^= s << 13;
	s ^= s >> 17;
	s ^= s << 5;
	return s;
}
