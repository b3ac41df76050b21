/* state_open.c -- the state factory: which backend holds the endpoint state.
 *
 * The one place that knows every backend: the configuration's
 * state.backend ("file", "memory", "redis") and $CONVBI_REDIS_URL choose
 * one; everything above (pool.c, llm.c) sees only struct state. */
#include "llm/config.h"
#include "llm/state.h"
#include "llm/state_redis.h"

#include <string.h>

int state_open(struct state **out, const struct state_cfg *cfg, const struct state_shape *shape, struct err *err)
{
	static const struct state_cfg defaults;
	if (!cfg)
		cfg = &defaults;
	*out = NULL;
	if (cfg->backend && !strcmp(cfg->backend, "memory"))
		return state_open_memory(out, shape, err);
	if (state_redis_wanted(cfg))
		return state_redis_open_cfg(out, cfg, shape, err);
	return state_open_path(out, cfg->path, shape, err);
}

const char *state_away(const struct state *st, char *out, size_t cap)
{
	return state_redis_away(st, out, cap);
}
