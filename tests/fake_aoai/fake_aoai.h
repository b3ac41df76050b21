/* fake_aoai.h -- the fake Azure OpenAI server's internal contract (tests/fake_aoai).
 *
 * The fake stands in for Azure OpenAI in every test and benchmark.  It is one
 * executable made of these files, dependencies pointing down the list:
 *   main.c      command line, listening sockets, port file, signals, acceptors
 *   route.c     one connection end to end: control API, paths, auth, faults,
 *               quotas, what is logged
 *   wire.c      how a success goes on the wire: chat.completion JSON, SSE
 *               events, and the stream faults that break them
 *   reply.c     what to answer: the chat request, rules, map files, sequences
 *   scenario.c  the scenario file: endpoints, rules, defaults
 *   fault.c     fault kinds and presets, the per-endpoint fault queue
 *   quota.c     per-endpoint sliding windows (rps, rp10s, rpm, tpm)
 *   http.c      HTTP/1.1 on one socket: request parsing, replies, chunks, waits
 *   entra.c     the Entra ID token service (IMDS, App Service, v2.0) and
 *               the check of the tokens it issued
 *   reqlog.c    the JSON-lines request log (keys redacted)
 *   util.c      growable strings, JSON escaping, clocks, random numbers
 * It links only libc, pthreads, cJSON and PCRE2, never the library under
 * test, so a bug in convbi cannot hide itself behind a matching bug here.
 *
 * Threads: one acceptor per endpoint, one thread per connection.  Shared
 * mutable state is small and always behind a mutex: an endpoint's faults,
 * quota windows and stats (endpoint.mu), the rules' sequence counters
 * (scenario.mu) and the log file (server.log_mu).  The scenario itself is
 * read-only once loaded.  This is a test tool: allocation failure prints one
 * line and aborts (xmalloc) instead of being a path of its own.
 */
#ifndef FAKE_AOAI_FAKE_H
#define FAKE_AOAI_FAKE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define FK_MAX_BODY (8u << 20)          /* request body cap: 413 beyond */
#define FK_MAX_HEAD (64u << 10)         /* request line + headers cap: 431 beyond */
#define FK_MAX_HEADERS 128              /* header lines per request: 431 beyond */
#define FK_MAX_ENDPOINTS 64             /* endpoints per scenario */
#define FK_MAX_FILE (64u << 20)         /* scenario and map file size cap */
#define FK_MAX_REPLY_BYTES (256L << 20) /* cap on a rule's reply_bytes */
#define FK_DEFAULT_API_VERSION "2024-10-21"
#define FK_MAX_TOKENS 4096 /* issued tokens remembered (a ring) */
#define FK_TOKEN_LEN 60    /* an issued token's length */
#define FK_MAX_SPILLOVER 8 /* spillover deployments per endpoint */

/* ---- util.c ------------------------------------------------------------ */

struct sbuf {
	char *p;    /* owned; NUL-terminated when non-NULL */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
};

#define SBUF_INIT          \
	{                  \
		NULL, 0, 0 \
	}

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

void sb_reserve(struct sbuf *b, size_t extra);
void sb_add(struct sbuf *b, const void *p, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string; invalid UTF-8 becomes U+FFFD so
 * the output is always valid JSON. */
void sb_json(struct sbuf *b, const char *s, size_t n);
/* The offset + 1 of the first escaped NUL (\u0000, not after an escaped
 * backslash) in JSON text, else 0: cJSON would end that string there, so
 * the fake refuses scenarios and fault lists holding one rather than send
 * a cut reply (attack5 F16). */
size_t json_escaped_nul(const char *s, size_t n);
void sb_reset(struct sbuf *b);
/* Hands the bytes to the caller (who frees them); "" for an empty buffer. */
char *sb_take(struct sbuf *b);
void sb_release(struct sbuf *b);

/* Length of the valid UTF-8 sequence at s (1..4), 0 when it is invalid. */
int utf8_seq_len(const unsigned char *s, size_t n);

int64_t mono_ms(void); /* monotonic clock: windows, waits */
int64_t wall_ms(void); /* Unix time in ms: log t_ms, `created` */
uint64_t rng_seed(void);
uint64_t rng_next(uint64_t *state); /* xorshift64*: fast, not for secrets */
double rng_unit(uint64_t *state);   /* uniform in [0, 1) */
void make_uuid(char out[37], uint64_t *rng);
/* ceil(n / 4): the fake's token estimate for n characters. */
long tokens_of(size_t n);

/* ---- quota.c ----------------------------------------------------------- */

struct rwin {            /* a request window: times of the last `limit` admits */
	int64_t *t;      /* owned ring of `limit` slots (ms, monotonic) */
	int limit;       /* 0 = quota off */
	int head;        /* index of the oldest admit */
	int n;           /* admits in the ring */
	int64_t span_ms; /* window length */
};

struct tokent {
	int64_t t;   /* admit time, ms */
	long tokens; /* estimated tokens charged */
};

struct twin {             /* the token window (tpm) */
	struct tokent *e; /* owned; live entries are e[head..n) */
	size_t head, n, cap;
	long sum;        /* tokens in e[head..n) */
	long limit;      /* tokens per span_ms; 0 = quota off */
	long per_minute; /* the tpm (what x-ratelimit-limit-tokens says) */
	int64_t span_ms; /* window length, 60 s unless the scenario says */
};

struct quota {
	struct rwin req[3]; /* rps (1 s), rp10s (10 s), rpm (60 s) */
	struct twin tok;    /* tpm (over tpm_span_ms, 60 s by default) */
};

struct quota_verdict {
	int ok;           /* 1 admitted (and charged), 0 refused */
	int tokens;       /* refused by the token quota (else by a request one) */
	int64_t retry_ms; /* refused: ms until the binding window frees */
	long rem_req;     /* remaining requests in the tightest window, -1 = off */
	long lim_req;     /* that window's limit, -1 = off */
	long rem_tok;     /* remaining tokens, -1 = off */
	long lim_tok;     /* token limit, -1 = off */
};

/* tpm_span_ms: the window the tpm is evaluated over (tpm x span / 60 s
 * tokens per sliding span); 60000 is Azure's minute. */
void quota_init(struct quota *q, int rps, int rp10s, int rpm, long tpm, int64_t tpm_span_ms);
void quota_release(struct quota *q);
void quota_reset(struct quota *q);
/* Changes the request windows' limits while they run (-1 = leave that
 * window as it is, 0 = off); each keeps its youngest admits that fit. */
void quota_set(struct quota *q, int rps, int rp10s, int rpm);
/* Admits (and charges) one request of `tokens` at now_ms, or refuses it and
 * says when to retry.  Caller holds the endpoint's mutex. */
void quota_take(struct quota *q, int64_t now_ms, long tokens, struct quota_verdict *v);

/* ---- fault.c ----------------------------------------------------------- */

enum fault_kind {
	FAULT_NONE,
	FAULT_STATUS,           /* an error reply (every status preset) */
	FAULT_RESET,            /* TCP RST after reading the request */
	FAULT_HANG,             /* read the request, never answer */
	FAULT_SLOW_FIRST_TOKEN, /* wait delay_ms, then answer normally */
	FAULT_STREAM_CUT,       /* after_chunks events, then close */
	FAULT_STREAM_STALL,     /* after_chunks events, then silence */
	FAULT_MALFORMED_CHUNK,  /* after_chunks events, a broken one, go on */
	FAULT_NO_DONE,          /* a clean stream without data: [DONE] */
	FAULT_FLAP              /* 503 for down_ms from the first hit */
};

struct fault {
	enum fault_kind kind;
	char *name;            /* owned: the kind as written, for the log */
	int count;             /* requests left: -1 forever, 0 spent */
	int status;            /* FAULT_STATUS, FAULT_FLAP */
	char *body;            /* owned: the error body (FAULT_STATUS, FAULT_FLAP) */
	char *headers;         /* owned: extra "name: value\r\n" lines */
	int delay_ms;          /* FAULT_SLOW_FIRST_TOKEN */
	int after_chunks;      /* stream faults: SSE events sent first */
	int down_ms;           /* FAULT_FLAP */
	int64_t flap_until_ms; /* FAULT_FLAP: 0 until its first hit */
};

/* What one request drew from the queue; a deep copy the request owns, so a
 * concurrent POST /_fake/faults can free the queue safely. */
struct fault_hit {
	enum fault_kind kind;
	char name[32]; /* "none" when kind == FAULT_NONE */
	int status;
	char *body;    /* owned or NULL */
	char *headers; /* owned or NULL */
	int delay_ms;
	int after_chunks;
};

/* Parses a JSON array of fault objects.  On success *out owns the list; on
 * error returns -1 with a one-line message in err and *out = NULL. */
int fault_parse_list(const char *json, size_t len, struct fault **out, int *nout, char *err, size_t errlen);
/* The same for an already parsed array (the scenario's "faults"). */
struct cJSON;
int fault_parse_array(const struct cJSON *arr, struct fault **out, int *nout, char *err, size_t errlen);
/* Draws the fault for the next request from ep's queue (the first entry
 * whose count is not 0, counting it down).  Caller holds ep->mu. */
struct endpoint;
void fault_take(struct endpoint *ep, int64_t now_ms, struct fault_hit *hit);
void fault_list_free(struct fault *f, int n);
void fault_hit_release(struct fault_hit *hit);

/* ---- scenario.c -------------------------------------------------------- */

struct stats {
	long requests;      /* model requests (control API excluded) */
	long ok;            /* replies sent with status 200 */
	long rate_limited;  /* replies sent with status 429 (quota or fault) */
	long faulted;       /* requests that drew a fault */
	long prompt_tokens; /* billed: of the replies sent with status 200 */
	long cached_tokens; /* ... of them served from the prompt cache */
	long completion_tokens;
	double cost_usd; /* ... at the endpoint's `price` */
};

/* How an endpoint treats `n` > 1 (scenario "n"): Azure and OpenAI send n
 * choices; Ollama ignores it (one choice); llama.cpp's server refuses it. */
enum n_mode { N_CHOICES, N_IGNORE, N_REJECT };

struct endpoint {
	char *name;                    /* owned: [A-Za-z0-9._-]+, unique */
	char *api_key;                 /* owned: never logged */
	int local_auth;                /* 1 (default): the key works; 0: keys get 401, only Entra ID tokens */
	char *region;                  /* owned or NULL: sent as x-ms-region */
	char *spill[FK_MAX_SPILLOVER]; /* owned: deployments that take spillover */
	int nspill;
	long context_window; /* tokens; 0 = no limit */
	char *deployment;    /* owned */
	char *model;         /* owned: reported as `model` (default: deployment) */
	int lat_median_ms;   /* latency before a success; 0 = none */
	int lat_p95_ms;      /* > median: lognormal spread; else constant */
	int chunk_ms;        /* gap between SSE events */
	long cached_tokens;  /* prompt tokens reported as cached (capped at the prompt) */
	int token_chars;     /* prompt characters per reported token (default 4, as tokens_of) */
	double price[3];     /* USD per million: input, cached_input, output */
	int n_mode;          /* enum n_mode: what a request's `n` > 1 gets */
	int rps, rp10s, rpm;
	long tpm;
	int rl_headers; /* 1 (default): x-ratelimit-* and retry-after-ms; 0: a 429 says retry-after alone */
	int listen_fd;
	int port;
	pthread_t acceptor;
	pthread_mutex_t mu;   /* guards everything below */
	struct fault *faults; /* owned queue */
	int nfaults;
	struct quota quota;
	struct stats stats;
};

enum reply_kind { REPLY_TEXT, REPLY_MAP, REPLY_SEQUENCE, REPLY_ECHO, REPLY_FILL };

struct mapent {
	char *key; /* owned */
	char *val; /* owned */
};

struct rule {
	char *match;    /* owned: the regex source */
	pcre2_code *re; /* owned; matching is thread-safe */
	enum reply_kind kind;
	char *text;         /* owned: REPLY_TEXT template */
	struct mapent *map; /* owned, sorted by key: REPLY_MAP */
	size_t nmap;
	char *map_default; /* owned or NULL: REPLY_MAP miss */
	char **seq;        /* owned: REPLY_SEQUENCE templates */
	int nseq;
	int seq_next;     /* guarded by scenario.mu */
	long reply_bytes; /* > 0: pad or cut the reply to exactly this */
};

/* The fake token service's configuration (the scenario's "entra"). */
struct entra_cfg {
	int on;                /* an "entra" object was given */
	char *tenant_id;       /* owned or NULL */
	char *client_id;       /* owned or NULL */
	char *client_secret;   /* owned or NULL: never logged */
	char *federated_token; /* owned or NULL: the assertion workload identity sends */
	char *identity_header; /* owned or NULL: App Service's X-IDENTITY-HEADER */
	char *scope;           /* owned */
	long lifetime_s;       /* of every issued token */
	int latency_ms;        /* before each token reply */
};

struct scenario {
	char *dir; /* owned: the scenario file's directory */
	struct entra_cfg entra;
	struct endpoint *ep; /* owned array */
	int nep;
	struct rule *rules; /* owned array, first match wins */
	int nrules;
	char *default_reply; /* owned */
	pthread_mutex_t mu;  /* guards rule.seq_next */
};

/* Loads and checks a scenario file.  Returns 0, or -1 with one line in err
 * (and sc released). */
int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen);
void scenario_release(struct scenario *sc);
void scenario_reset_sequences(struct scenario *sc);

/* ---- reply.c ----------------------------------------------------------- */

struct chat {         /* the parts of a chat request the fake reads */
	char *prompt; /* owned: message contents joined with "\n" */
	size_t prompt_len;
	size_t content_chars; /* sum of the contents' lengths (bytes) */
	char *last_user;      /* owned: the last user message, "" if none */
	char *model;          /* owned or NULL */
	int stream;           /* "stream": true */
	int include_usage;    /* "stream_options": {"include_usage": true} */
	long max_tokens;      /* max_tokens / max_completion_tokens, -1 absent */
	int n;                /* choices asked for ("n"), 1 when absent */
};

#define FK_MAX_CHOICES 128 /* the service refuses a larger `n` */

/* Parses a request body.  Returns 0, or -1 with the OpenAI-style message
 * for a 400 in err; `stream` is filled even on error when readable. */
int chat_parse(struct chat *ch, const char *body, size_t len, char *err, size_t errlen);
void chat_release(struct chat *ch);
/* The reply text for a request: the first matching rule, else the default.
 * Caller frees. */
char *reply_pick(struct scenario *sc, const struct chat *ch);

/* ---- http.c ------------------------------------------------------------ */

struct server;

struct conn {
	int fd;              /* owned; -1 once closed */
	struct server *srv;  /* borrowed */
	struct endpoint *ep; /* borrowed: the endpoint whose port was dialled */
	char *in;            /* owned: received, not yet consumed bytes */
	size_t in_len, in_cap;
	struct sbuf out; /* pending output, sent by http_flush */
	uint64_t rng;
};

struct header {
	char *name;  /* lowercased; points into request.head */
	char *value; /* trimmed; points into request.head */
};

struct request {
	char *head;   /* owned: the header block, parsed in place */
	char *method; /* into head */
	char *target; /* into head: path and query as sent */
	char *path;   /* owned: target up to '?' */
	char *query;  /* owned: after '?', "" if none */
	struct header h[FK_MAX_HEADERS];
	int nh;
	char *body; /* owned, NUL-terminated */
	size_t body_len;
	int keep_alive; /* the connection may serve another request */
	int64_t t_ms;   /* wall time the request was complete */
};

#define HTTP_GONE (-1) /* the peer closed or the socket failed */

/* Reads one request.  Returns 0, HTTP_GONE, or an HTTP status (400, 411,
 * 413, 431) to answer before closing.  Sends "100 Continue" when asked. */
int http_read_request(struct conn *c, struct request *rq);
void request_release(struct request *rq);
const char *request_header(const struct request *rq, const char *lname);
/* Copies query parameter `name` into out (decoding nothing); 0 if absent. */
int request_query(const struct request *rq, const char *name, char *out, size_t outlen);

/* Queues a status line and headers (content_length < 0: chunked). */
void http_head(struct conn *c, const struct request *rq, int status, const char *ctype, long long content_length,
               const char *extra);
/* Queues a complete JSON reply and flushes it. Returns 0 or HTTP_GONE. */
int http_reply(struct conn *c, const struct request *rq, int status, const char *extra, const char *body, size_t len);
void http_queue(struct conn *c, const void *p, size_t n);
void http_chunk(struct conn *c, const void *p, size_t n); /* queues one chunk */
int http_flush(struct conn *c);
/* Sleeps ms (forever when ms < 0) unless the peer hangs up first.
 * Returns 0 after the sleep, HTTP_GONE if the peer went away. */
int http_wait(struct conn *c, int ms);
void http_close(struct conn *c); /* orderly close */
void http_reset(struct conn *c); /* SO_LINGER {1,0}: RST */

/* ---- reqlog.c ---------------------------------------------------------- */

struct issued {
	char tok[FK_TOKEN_LEN + 1];
	int64_t exp_ms; /* Unix ms */
	int revoked;
};

struct tokens {
	pthread_mutex_t mu; /* guards everything below */
	struct issued ring[FK_MAX_TOKENS];
	int n, next;
	long requests; /* requests to the token paths */
	long issued;   /* tokens issued */
};

struct server {
	struct scenario sc;
	struct tokens tokens;
	void *log;              /* FILE *, owned; NULL without --log */
	pthread_mutex_t log_mu; /* one line at a time */
};

int reqlog_open(struct server *s, const char *path);
/* Writes one JSON line for a request; header values of api-key and
 * authorization become "<match>" or "<mismatch>". */
void reqlog_write(struct server *s, const struct endpoint *ep, const struct request *rq, int status, const char *fault,
                  int stream);
/* Flushes and keeps the log locked: no line can start after this. */
void reqlog_seal(struct server *s);

/* ---- wire.c ------------------------------------------------------------ */

struct answer {           /* one successful reply, ready to send */
	const char *text; /* the assistant's content (choice 0) */
	size_t len;
	char *const *extra; /* the other choices' contents (non-stream only) */
	int nextra;
	const char *model;
	int azure; /* Azure's content-filter annotations */
	int include_usage;
	long prompt_tokens;
	long completion_tokens;
	long cached_tokens;  /* of prompt_tokens (usage.prompt_tokens_details) */
	int chunk_ms;        /* gap between SSE events */
	const char *headers; /* extra header lines (x-ratelimit-*) */
};

/* Send a success, applying a stream fault if the request drew one.
 * Return 1 when the connection can serve another request, else 0. */
int wire_json(struct conn *c, const struct request *rq, const struct answer *a, const struct fault_hit *hit);
int wire_stream(struct conn *c, const struct request *rq, const struct answer *a, const struct fault_hit *hit);

/* ---- entra.c ----------------------------------------------------------- */

enum { TOKEN_UNKNOWN, TOKEN_VALID, TOKEN_EXPIRED, TOKEN_REVOKED };

/* Reads the scenario's "entra" (o may be NULL: off).  0, or -1 with msg. */
int entra_load(const struct cJSON *o, struct entra_cfg *e, char *msg, size_t mlen);
void entra_release(struct entra_cfg *e);
void entra_init(struct tokens *t);
/* 1 for the three token paths. */
int entra_is_token_path(const char *path);
/* Answers one token request (logged); returns 1 to keep the connection. */
int entra_serve(struct conn *c, struct request *rq);
/* TOKEN_VALID, TOKEN_EXPIRED, TOKEN_REVOKED or TOKEN_UNKNOWN. */
int entra_token_state(struct server *s, const char *tok);
void entra_revoke(struct server *s);
void entra_counts(struct server *s, long *requests, long *issued);
/* The log's stand-in for a header value that is a secret of the token
 * service (identity header, issued token), or NULL. */
const char *entra_redact_header(struct server *s, const char *name, const char *value);
/* A form body with client_secret and client_assertion values replaced;
 * caller frees. */
char *entra_redact_body(const char *body);

/* ---- route.c ----------------------------------------------------------- */

/* Thread entry for one accepted connection (arg: struct conn *, freed). */
void *route_connection(void *arg);

#endif
