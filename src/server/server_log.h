/* server_log.h: the log lines of `bosk server`, at a level and in a
 * format chosen at start (--log-level, --log-format). Lines go to stderr,
 * each in one write, so lines from the HTTP threads never interleave. */
#ifndef BOSK_SERVER_LOG_H
#define BOSK_SERVER_LOG_H

#include <stddef.h>

/* logrus' levels, most severe first: a line is written when its level is
 * at or above the configured one (default SLOG_INFO). */
typedef enum {
    SLOG_PANIC, SLOG_FATAL, SLOG_ERROR, SLOG_WARN, SLOG_INFO, SLOG_DEBUG, SLOG_TRACE
} slog_level;

/* Sets the level ("panic" ... "trace", "warn" or "warning") and the format
 * ("text" or "json"); NULL keeps the current one. Call before any thread
 * logs. 0, or -1 with a message naming the bad value in err. */
int server_log_configure(const char *level, const char *format, char *err, size_t n);

/* Whether a line at this level would be written. */
int server_log_enabled(slog_level level);

/* One log line at level: text is "TIME bosk server: [LEVEL: ]MESSAGE",
 * json is {"level":...,"msg":...,"time":...} as logrus' JSON formatter. */
void server_log(slog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
