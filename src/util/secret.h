/* secret.h -- API keys as a type with no printer.
 *
 * A struct secret holds a key in memory that is zeroed on release.  Its
 * only reader is secret_value(), used by the HTTP layer to build the auth
 * header.  Every key loaded is also registered process-wide so that
 * secret_redact() can scrub it from any text that is about to leave the
 * library (log lines, error messages, event payloads).
 */
#ifndef CONVBI_UTIL_SECRET_H
#define CONVBI_UTIL_SECRET_H

#include <stddef.h>

struct secret {
	char *value_; /* owned; read only through secret_value() */
};

/* Copies value into s and registers it for redaction. */
int secret_set(struct secret *s, const char *value);
void secret_release(struct secret *s);
const char *secret_value(const struct secret *s);
int secret_is_set(const struct secret *s);
/* Undoes one secret_set's registration of value (a rotated token no
 * longer in use), so the registry does not fill with expired tokens; the
 * value stays redacted while other holders registered it too. */
void secret_forget(const char *value);
/* Replaces every registered key found in the NUL-terminated text, in
 * place, by "***" (padded with '*' to the key's length). */
void secret_redact(char *text);

/* The URL as it may be shown (endpoints, messages): a user name and
 * password ("user:pass@") become "***@", every query parameter's value
 * becomes "***" (api-version, which says nothing secret, is kept; a
 * parameter without '=' becomes "***"), a fragment becomes "#***".  out
 * gets at most cap - 1 bytes and a NUL. */
void secret_url_shown(char *out, size_t cap, const char *url);

#endif
