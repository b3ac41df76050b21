/* http.c -- libcurl transport with millisecond timeouts (see http.h).
 *
 * Each cached handle is an easy handle attached to its own multi handle;
 * the multi's connection cache keeps the keep-alive connections, so a
 * handle taken from the free-list usually finds a warm connection to the
 * endpoint it last served.  A handle whose transfer failed is destroyed
 * rather than cached, which also closes its connections.
 *
 * The trap: the header callback sees the headers of interim 1xx responses
 * (e.g. "100 Continue") too; we forward only the final response's headers.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/clock.h"

#define HTTP_CACHE_MAX 64 /* idle handles kept for reuse */

struct handle {
	CURL *easy;
	CURLM *multi;
	struct handle *next;
};

struct http_client {
	pthread_mutex_t lock;
	struct handle *idle; /* owned free-list */
	int nidle;
	CURLSH *share; /* DNS + TLS session cache */
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

struct transfer {
	const struct http_call *call;
	struct http_result *res;
	int64_t start_ms;
	int64_t last_byte_ms;
	int got_first;
	int in_interim; /* current header block belongs to a 1xx response */
	int aborted;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
	struct http_client *c = userp;
	pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct http_client *c = userp;
	pthread_mutex_unlock(&c->share_locks[data]);
}

int http_client_new(struct http_client **out, struct err *err)
{
	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return err_set(err, CONVBI_ENOMEM, "libcurl failed to initialise: %s", curl_easy_strerror(global_rc));
	struct http_client *c = xcalloc(1, sizeof *c);
	if (!c)
		return err_code(err, CONVBI_ENOMEM);
	pthread_mutex_init(&c->lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	c->share = curl_share_init();
	if (!c->share) {
		http_client_free(c);
		return err_code(err, CONVBI_ENOMEM);
	}
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = c;
	return CONVBI_OK;
}

static void handle_destroy(struct handle *h)
{
	if (!h)
		return;
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->easy)
		curl_easy_cleanup(h->easy);
	free(h);
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	while (c->idle) {
		struct handle *h = c->idle;
		c->idle = h->next;
		handle_destroy(h);
	}
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct handle *handle_get(struct http_client *c)
{
	pthread_mutex_lock(&c->lock);
	struct handle *h = c->idle;
	if (h) {
		c->idle = h->next;
		c->nidle--;
	}
	pthread_mutex_unlock(&c->lock);
	if (h) {
		curl_easy_reset(h->easy);
		return h;
	}
	h = xcalloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->easy = curl_easy_init();
	h->multi = curl_multi_init();
	if (!h->easy || !h->multi) {
		handle_destroy(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 16L);
	return h;
}

static void handle_put(struct http_client *c, struct handle *h, int healthy)
{
	if (!healthy) {
		handle_destroy(h);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (c->nidle < HTTP_CACHE_MAX) {
		h->next = c->idle;
		c->idle = h;
		c->nidle++;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	handle_destroy(h);
}

static void mark_byte(struct transfer *t)
{
	int64_t now = clock_mono_ms();
	if (!t->got_first) {
		t->got_first = 1;
		t->res->first_byte_ms = now - t->start_ms;
	}
	t->last_byte_ms = now;
}

static size_t on_header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct transfer *t = userp;
	size_t n = size * nmemb;
	mark_byte(t);
	if (n >= 5 && !memcmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', n);
		long code = sp ? strtol(sp + 1, NULL, 10) : 0;
		t->in_interim = code >= 100 && code < 200;
		if (!t->in_interim)
			t->res->status = code;
		return n;
	}
	if (t->in_interim || !t->call->on_header)
		return n;
	const char *colon = memchr(data, ':', n);
	if (!colon)
		return n;
	size_t nlen = (size_t)(colon - data);
	const char *v = colon + 1;
	size_t vlen = n - nlen - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	t->call->on_header(t->call->payload, data, nlen, v, vlen);
	return n;
}

static size_t on_body_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct transfer *t = userp;
	size_t n = size * nmemb;
	mark_byte(t);
	if (t->call->on_body && t->call->on_body(t->call->payload, t->res->status, data, n)) {
		t->aborted = 1;
		return 0; /* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	return n;
}

static int map_curl(CURLcode rc, const struct transfer *t)
{
	switch (rc) {
	case CURLE_OK: return HTTP_FAIL_NONE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT: return HTTP_FAIL_CONNECT;
	case CURLE_OPERATION_TIMEDOUT: return t->got_first ? HTTP_FAIL_DEADLINE : HTTP_FAIL_CONNECT_TIMEOUT;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR: return t->res->status ? HTTP_FAIL_PARTIAL : HTTP_FAIL_RESET;
	case CURLE_PARTIAL_FILE: return HTTP_FAIL_PARTIAL;
	case CURLE_WRITE_ERROR: return t->aborted ? HTTP_FAIL_ABORTED : HTTP_FAIL_OTHER;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE: return HTTP_FAIL_TLS;
	default: return HTTP_FAIL_OTHER;
	}
}

/* What went wrong in a user's words -- never libcurl's ("Transferred a
 * partial file"), which reaches retry events, error lines and MCP
 * results through the detail text.  Codes not listed keep libcurl's text
 * (they are not the network failing: a bad option, out of memory). */
static const char *plain_detail(CURLcode rc, const struct transfer *t)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST: return "the endpoint's host name could not be resolved";
	case CURLE_COULDNT_RESOLVE_PROXY: return "the proxy's host name could not be resolved";
	case CURLE_COULDNT_CONNECT: return "the endpoint refused the connection or could not be reached";
	case CURLE_OPERATION_TIMEDOUT: return "the endpoint took too long";
	case CURLE_GOT_NOTHING: return "the endpoint closed the connection without replying";
	case CURLE_SEND_ERROR: return "the connection broke while the request was sent";
	case CURLE_RECV_ERROR: return t->res->status ? "the connection broke mid-reply" : "the connection broke before a reply";
	case CURLE_PARTIAL_FILE: return "the endpoint closed the connection mid-reply";
	case CURLE_WRITE_ERROR: return "the reply could not be kept";
	case CURLE_SSL_CONNECT_ERROR: return "the TLS handshake with the endpoint failed";
	case CURLE_PEER_FAILED_VERIFICATION: return "the endpoint's TLS certificate is not trusted";
	case CURLE_SSL_CERTPROBLEM: return "the client TLS certificate could not be used";
	case CURLE_SSL_CIPHER: return "the endpoint and convbi share no TLS cipher";
	case CURLE_SSL_CACERT_BADFILE: return "the trusted CA certificates could not be read";
	default: return curl_easy_strerror(rc);
	}
}

const char *http_fail_name(int fail)
{
	static const char *const names[] = {"none",         "connect",         "reset",
	                                    "tls",          "connect_timeout", "first_byte_timeout",
	                                    "idle_timeout", "deadline",        "partial",
	                                    "aborted",      "canceled",        "transport"};
	return fail >= 0 && fail <= HTTP_FAIL_OTHER ? names[fail] : "?";
}

/* Which of our own timers has fired, if any (HTTP_FAIL_NONE if none). */
static int timer_fired(const struct transfer *t, int64_t now)
{
	const struct http_call *c = t->call;
	if (now >= c->deadline_mono_ms)
		return HTTP_FAIL_DEADLINE;
	if (!t->got_first && c->first_byte_timeout_ms > 0 && now - t->start_ms >= c->first_byte_timeout_ms)
		return HTTP_FAIL_FIRST_BYTE_TIMEOUT;
	if (t->got_first && c->idle_timeout_ms > 0 && now - t->last_byte_ms >= c->idle_timeout_ms)
		return HTTP_FAIL_IDLE_TIMEOUT;
	return HTTP_FAIL_NONE;
}

int http_post(struct http_client *c, const struct http_call *call, struct http_result *res)
{
	memset(res, 0, sizeof *res);
	struct transfer t = {call, res, clock_mono_ms(), 0, 0, 0, 0};
	struct curl_slist *hdrs = NULL;
	int rc = CONVBI_OK;
	struct handle *h = handle_get(c);
	if (!h)
		return CONVBI_ENOMEM;
	for (size_t i = 0; i < call->nheaders; i++) {
		struct curl_slist *n = curl_slist_append(hdrs, call->headers[i]);
		if (!n) {
			rc = CONVBI_ENOMEM;
			goto done;
		}
		hdrs = n;
	}
	/* No "Expect: 100-continue" round trip before large bodies. */
	struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
	if (!n) {
		rc = CONVBI_ENOMEM;
		goto done;
	}
	hdrs = n;
	int64_t remaining = call->deadline_mono_ms - t.start_ms;
	if (remaining <= 0) {
		res->fail = HTTP_FAIL_DEADLINE;
		rc = CONVBI_ELLM;
		goto done;
	}
	CURL *e = h->easy;
	curl_easy_setopt(e, CURLOPT_URL, call->url);
	if (call->method && !strcmp(call->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body ? call->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(call->connect_timeout_ms > 0 ? call->connect_timeout_ms : 3000));
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)remaining + 1000); /* backstop only */
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "convbi/" CONVBI_VERSION_STRING);
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		rc = CONVBI_ENOMEM;
		goto done;
	}
	int running = 1, own_fail = HTTP_FAIL_NONE;
	CURLcode result = CURLE_OK;
	while (running) {
		curl_multi_perform(h->multi, &running);
		if (!running)
			break;
		int64_t now = clock_mono_ms();
		if ((own_fail = timer_fired(&t, now)))
			break;
		if (call->cancel && call->cancel(call->payload)) {
			own_fail = HTTP_FAIL_CANCELED;
			break;
		}
		int64_t wait = call->deadline_mono_ms - now;
		curl_multi_poll(h->multi, NULL, 0, (int)(wait < HTTP_POLL_MS ? (wait > 0 ? wait : 1) : HTTP_POLL_MS), NULL);
	}
	if (!own_fail) {
		int left;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(h->multi, &left)))
			if (msg->msg == CURLMSG_DONE)
				result = msg->data.result;
	}
	curl_multi_remove_handle(h->multi, e);
	res->total_ms = clock_mono_ms() - t.start_ms;
	res->fail = own_fail ? own_fail : map_curl(result, &t);
	if (res->fail == HTTP_FAIL_CONNECT_TIMEOUT && !own_fail && result == CURLE_OPERATION_TIMEDOUT) {
		double ct = 0;
		curl_easy_getinfo(e, CURLINFO_CONNECT_TIME, &ct);
		if (ct > 0)
			res->fail = HTTP_FAIL_FIRST_BYTE_TIMEOUT;
	}
	if (res->fail) {
		if (!own_fail)
			strncpy(res->detail, plain_detail(result, &t), sizeof res->detail - 1);
		rc = CONVBI_ELLM;
	}
done:
	curl_slist_free_all(hdrs);
	handle_put(c, h, rc == CONVBI_OK);
	return rc;
}
