/* capped.c -- capped replacements for long-running SQL functions (see
 * capped.h).
 *
 * One struct capped per exec connection holds the private ":memory:"
 * connection and, per function and argument count, a prepared
 * "SELECT fn(?1, ..., ?n)" created on first use.  A call checks its
 * arguments, binds them, steps, copies the value out (sqlite3_result_value
 * copies) and resets.  The struct is shared by every registration and
 * reference-counted: SQLite calls capped_unref once per registration when
 * the connection closes (or a registration is replaced).
 *
 * randomblob and zeroblob need no delegate: they are simple enough to
 * implement here; LIKE and GLOB call sqlite3_strlike()/sqlite3_strglob(),
 * the built-ins' own matcher, directly (a delegate would cost a statement
 * step on every row of the most common filter there is).
 */
#include "db/capped.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/text.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/utf8.h"

#define CAPPED_ARGS_MAX 127 /* SQLite's SQLITE_MAX_FUNCTION_ARG */

typedef int (*check_fn)(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen);

static int check_printf(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen);
static int check_work(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen);
static int check_json(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen);

static const struct delegated {
	const char *name;
	int nargs; /* -1 = any number */
	check_fn check;
} delegated[] = {
        {"printf", -1, check_printf}, {"format", -1, check_printf}, {"instr", 2, check_work}, {"replace", 3, check_work},
        {"trim", 2, check_work},      {"ltrim", 2, check_work},     {"rtrim", 2, check_work}, {"json_patch", 2, check_json},
};

#define NDELEGATED (sizeof delegated / sizeof delegated[0])

struct capped;

struct slot {
	struct capped *c;
	int fn; /* index in delegated[], or -1 - the NATIVE_* of a native one */
};

enum { NATIVE_RANDOMBLOB, NATIVE_ZEROBLOB, NATIVE_LIKE2, NATIVE_LIKE3, NATIVE_GLOB, NNATIVE };

struct capped {
	sqlite3 *helper;            /* owned: where the built-ins run */
	int refs;                   /* registrations still holding this */
	const int64_t *deadline_ms; /* borrowed from exec; 0 = none */
	int like_max;               /* db's SQLITE_LIMIT_LIKE_PATTERN_LENGTH at install */
	struct slot slots[NDELEGATED + NNATIVE];
	sqlite3_stmt *stmt[NDELEGATED][CAPPED_ARGS_MAX + 1]; /* owned, lazily prepared */
};

static void capped_unref(void *p)
{
	struct slot *s = p;
	struct capped *c = s->c;
	if (--c->refs > 0)
		return;
	for (size_t f = 0; f < NDELEGATED; f++)
		for (int n = 0; n <= CAPPED_ARGS_MAX; n++)
			sqlite3_finalize(c->stmt[f][n]);
	sqlite3_close_v2(c->helper);
	free(c);
}

static void too_big(sqlite3_context *ctx, const char *msg)
{
	sqlite3_result_error(ctx, msg, -1);
	sqlite3_result_error_code(ctx, SQLITE_TOOBIG);
}

/* 1 (and the call fails with SQLITE_INTERRUPT) once the deadline passed. */
static int too_late(sqlite3_context *ctx, const struct capped *c)
{
	int64_t d = *c->deadline_ms;
	if (!d || clock_mono_ms() < d)
		return 0;
	sqlite3_result_error(ctx, "interrupted", -1);
	sqlite3_result_error_code(ctx, SQLITE_INTERRUPT);
	return 1;
}

/* ---- checks ---------------------------------------------------------------- */

/* A field width or precision: `*` takes the next argument. */
static int field_ok(const char **pp, int argc, sqlite3_value **argv, int *argi, sqlite3_int64 *v)
{
	const char *p = *pp;
	*v = 0;
	if (*p == '*') {
		if (*argi < argc)
			*v = sqlite3_value_int64(argv[(*argi)++]);
		if (*v < 0)
			*v = -*v;
		p++;
	} else {
		while (*p >= '0' && *p <= '9') {
			if (*v <= CAPPED_PRINTF_FIELD_MAX)
				*v = *v * 10 + (*p - '0');
			p++;
		}
	}
	*pp = p;
	return *v <= CAPPED_PRINTF_FIELD_MAX;
}

static int check_printf(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen)
{
	const char *p = (const char *)sqlite3_value_text(argv[0]);
	int argi = 1;
	sqlite3_int64 v;
	if (!p)
		return 1;
	while ((p = strchr(p, '%')) != NULL) {
		p++;
		if (*p == '%') {
			p++;
			continue;
		}
		while (*p && strchr("-+ #!0,", *p))
			p++;
		if (!field_ok(&p, argc, argv, &argi, &v))
			goto big;
		if (*p == '.') {
			p++;
			if (!field_ok(&p, argc, argv, &argi, &v))
				goto big;
		}
		while (*p == 'l')
			p++;
		if (!*p)
			break;
		if (*p != 'n')
			argi++; /* every conversion but %n and %% takes an argument */
		p++;
	}
	return 1;
big:
	sqlite3_snprintf(msglen, msg, "%s() field width or precision %lld exceeds the limit of %d; use a smaller one", name,
	                 (long long)v, CAPPED_PRINTF_FIELD_MAX);
	return 0;
}

static int check_work(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen)
{
	(void)argc;
	double a = sqlite3_value_bytes(argv[0]), b = sqlite3_value_bytes(argv[1]);
	if (a * b <= CAPPED_WORK_MAX)
		return 1;
	sqlite3_snprintf(msglen, msg, "%s() on arguments of %.0f and %.0f bytes exceeds the work limit; use shorter values", name,
	                 a, b);
	return 0;
}

/* json_patch walks the patch's keys and, for each, the target's -- and
 * every key of the patch the target lacks is appended to the target and
 * walked by the keys after it: patch x (target + patch) bounds it.  (A
 * 10-byte target with a 100,000-key patch ran 18 s in one call; the
 * product of the two sizes alone let it through.) */
static int check_json(int argc, sqlite3_value **argv, const char *name, char *msg, int msglen)
{
	(void)argc;
	double a = sqlite3_value_bytes(argv[0]), b = sqlite3_value_bytes(argv[1]);
	if (b * (a + b) <= CAPPED_WORK_MAX)
		return 1;
	sqlite3_snprintf(msglen, msg, "%s() on arguments of %.0f and %.0f bytes exceeds the work limit; use shorter values", name,
	                 a, b);
	return 0;
}

/* ---- the delegating function ---------------------------------------------------- */

static sqlite3_stmt *statement(struct capped *c, int fn, int argc)
{
	if (c->stmt[fn][argc])
		return c->stmt[fn][argc];
	struct buf q = BUF_INIT;
	int rc = buf_printf(&q, "SELECT %s(", delegated[fn].name);
	for (int i = 1; i <= argc && !rc; i++)
		rc = buf_printf(&q, i > 1 ? ", ?%d" : "?%d", i);
	if (!rc)
		rc = buf_putc(&q, ')');
	if (!rc)
		sqlite3_prepare_v3(c->helper, q.data, -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[fn][argc], NULL);
	buf_release(&q);
	return c->stmt[fn][argc];
}

static void call_delegated(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct slot *s = sqlite3_user_data(ctx);
	struct capped *c = s->c;
	char msg[200];

	if (argc < 1 || argc > CAPPED_ARGS_MAX) {
		sqlite3_result_error(ctx, "wrong number of arguments", -1);
		return;
	}
	if (too_late(ctx, c))
		return;
	if (!delegated[s->fn].check(argc, argv, delegated[s->fn].name, msg, (int)sizeof msg)) {
		too_big(ctx, msg);
		return;
	}
	sqlite3_stmt *st = statement(c, s->fn, argc);
	if (!st) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	for (int i = 0; i < argc; i++)
		sqlite3_bind_value(st, i + 1, argv[i]);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		sqlite3_result_value(ctx, sqlite3_column_value(st, 0));
	} else {
		sqlite3_result_error(ctx, sqlite3_errmsg(c->helper), -1);
		sqlite3_result_error_code(ctx, sqlite3_extended_errcode(c->helper));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* ---- BLOB makers ------------------------------------------------------------------ */

static int blob_size(sqlite3_context *ctx, sqlite3_value *arg, const char *fn, sqlite3_int64 *n)
{
	int max = fn[0] == 'r' ? CAPPED_RANDOMBLOB_MAX : CAPPED_BLOB_MAX;
	*n = sqlite3_value_int64(arg);
	if (*n < 1)
		*n = fn[0] == 'r' ? 1 : 0; /* as SQLite: randomblob gives at least one byte */
	if (*n > max) {
		char msg[128];
		sqlite3_snprintf((int)sizeof msg, msg, "%s(%lld) exceeds the %d-byte limit; ask for fewer bytes", fn,
		                 (long long)*n, max);
		too_big(ctx, msg);
		return 0;
	}
	return 1;
}

static void capped_randomblob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_int64 n;
	(void)argc;
	if (too_late(ctx, ((struct slot *)sqlite3_user_data(ctx))->c) || !blob_size(ctx, argv[0], "randomblob", &n))
		return;
	unsigned char *p = sqlite3_malloc64((sqlite3_uint64)n);
	if (!p) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_randomness((int)n, p);
	sqlite3_result_blob64(ctx, p, (sqlite3_uint64)n, sqlite3_free);
}

static void capped_zeroblob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_int64 n;
	(void)argc;
	if (!too_late(ctx, ((struct slot *)sqlite3_user_data(ctx))->c) && blob_size(ctx, argv[0], "zeroblob", &n))
		sqlite3_result_zeroblob64(ctx, (sqlite3_uint64)n);
}

/* ---- LIKE and GLOB ------------------------------------------------------------------ */

/* The backtracking bound of a pattern: 1 + its longest run between two
 * multi-character wildcards + the number of them. */
static double match_factor(const unsigned char *p, int n, char many)
{
	int run = 0, longest = 0, wild = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] == (unsigned char)many) {
			wild++;
			run = 0;
		} else if (++run > longest) {
			longest = run;
		}
	}
	return 1.0 + longest + wild;
}

/* like(pattern, value [, escape]) and glob(pattern, value), as SQLite's
 * own: NULL in, NULL out; the pattern length limit; a one-character
 * ESCAPE; numbers compared as their text. */
static void capped_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct slot *s = sqlite3_user_data(ctx);
	int glob = s->fn == -1 - NATIVE_GLOB;
	unsigned int esc = 0;
	if (too_late(ctx, s->c))
		return;
	const unsigned char *pat = sqlite3_value_text(argv[0]);
	int plen = sqlite3_value_bytes(argv[0]);
	const unsigned char *val = sqlite3_value_text(argv[1]);
	int vlen = sqlite3_value_bytes(argv[1]);
	if (!pat || !val)
		return;
	if (plen > s->c->like_max) {
		char msg[128];
		sqlite3_snprintf((int)sizeof msg, msg,
		                 "LIKE or GLOB pattern too complex (%d bytes, over %d); use a shorter pattern", plen,
		                 s->c->like_max);
		too_big(ctx, msg);
		return;
	}
	if (argc == 3) {
		const unsigned char *e = sqlite3_value_text(argv[2]);
		if (!e)
			return;
		uint32_t cp = 0;
		int elen = sqlite3_value_bytes(argv[2]);
		int n = elen ? (int)utf8_decode(e, (size_t)elen, &cp) : 0;
		if (n == 0 || n != elen) {
			sqlite3_result_error(ctx, "ESCAPE expression must be a single character", -1);
			return;
		}
		esc = cp;
	}
	double work = (double)vlen * match_factor(pat, plen, glob ? '*' : '%');
	if (work > CAPPED_MATCH_WORK_MAX) {
		char msg[200];
		sqlite3_snprintf((int)sizeof msg, msg,
		                 "%s on a value of %d bytes with a pattern of %d bytes exceeds the work limit; use a shorter "
		                 "pattern or value",
		                 glob ? "GLOB" : "LIKE", vlen, plen);
		too_big(ctx, msg);
		return;
	}
	int miss = glob ? sqlite3_strglob((const char *)pat, (const char *)val)
	                : sqlite3_strlike((const char *)pat, (const char *)val, esc);
	sqlite3_result_int(ctx, miss == 0);
}

/* ---- install ------------------------------------------------------------------------ */

int capped_install(sqlite3 *db, int value_max, const int64_t *deadline_ms, struct err *err)
{
	struct capped *c = xcalloc(1, sizeof *c);
	if (!c)
		return err_set(err, CONVBI_ENOMEM, "out of memory installing the capped SQL functions");
	c->deadline_ms = deadline_ms;
	c->like_max = sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, -1);
	int src = sqlite3_open_v2(":memory:", &c->helper, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		sqlite3_close_v2(c->helper);
		free(c);
		return err_set(err, src == SQLITE_NOMEM ? CONVBI_ENOMEM : CONVBI_EDB,
		               "cannot open the private connection for capped SQL functions (%s)", sqlite3_errstr(src));
	}
	sqlite3_limit(c->helper, SQLITE_LIMIT_LENGTH, value_max);
	sqlite3_db_config(c->helper, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);

	/* from here on db owns c: each registration holds one reference, and
	 * a failed registration releases its own through xDestroy */
	c->refs = 1; /* ours, until the loop is done */
	int flags = SQLITE_UTF8 | SQLITE_INNOCUOUS;
	static const struct {
		const char *name;
		int nargs, flags;
		void (*fn)(sqlite3_context *, int, sqlite3_value **);
	} native[NNATIVE] = {
	        [NATIVE_RANDOMBLOB] = {"randomblob", 1, 0, capped_randomblob},
	        [NATIVE_ZEROBLOB] = {"zeroblob", 1, SQLITE_DETERMINISTIC, capped_zeroblob},
	        [NATIVE_LIKE2] = {"like", 2, SQLITE_DETERMINISTIC, capped_match},
	        [NATIVE_LIKE3] = {"like", 3, SQLITE_DETERMINISTIC, capped_match},
	        [NATIVE_GLOB] = {"glob", 2, SQLITE_DETERMINISTIC, capped_match},
	};
	for (size_t f = 0; f < NDELEGATED + NNATIVE && src == SQLITE_OK; f++) {
		struct slot *s = &c->slots[f];
		s->c = c;
		c->refs++;
		if (f < NDELEGATED) {
			s->fn = (int)f;
			src = sqlite3_create_function_v2(db, delegated[f].name, delegated[f].nargs, flags | SQLITE_DETERMINISTIC,
			                                 s, call_delegated, NULL, NULL, capped_unref);
		} else {
			size_t k = f - NDELEGATED;
			s->fn = -1 - (int)k;
			src = sqlite3_create_function_v2(db, native[k].name, native[k].nargs, flags | native[k].flags, s,
			                                 native[k].fn, NULL, NULL, capped_unref);
		}
	}
	capped_unref(&c->slots[0]); /* drop ours */
	if (src != SQLITE_OK)
		return err_set(err, src == SQLITE_NOMEM ? CONVBI_ENOMEM : CONVBI_EDB,
		               "cannot register the capped SQL functions (%s)", sqlite3_errmsg(db));
	return CONVBI_OK;
}
