/* log.h -- the library's diagnostics, delivered to a sink the caller owns.
 *
 * The library never prints: warnings (a rebuilt state file, a fallback to
 * in-process state) go to a process-wide sink that the CLI points at
 * stderr and an embedder points wherever it likes; the default sink drops
 * them.  Every message passes through secret_redact() first, so a key that
 * slipped into a foreign message (a URL, an echoed header) never leaves.
 */
#ifndef CONVBI_UTIL_LOG_H
#define CONVBI_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

typedef void (*log_sink_fn)(int level, const char *line, void *payload);

void log_set_sink(log_sink_fn fn, void *payload, int min_level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
