/* server_log.c: level filter and text/JSON formatting of the server's log
 * lines (server_log.h). The settings are plain globals: they are written
 * once by server.run before libmicrohttpd starts its threads and only read
 * afterwards. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "server/server_log.h"

static slog_level log_level = SLOG_INFO;
static int log_json;

/* logrus' names (it prints "warning" for the warn level). */
static const char *const level_names[] = {
    "panic", "fatal", "error", "warning", "info", "debug", "trace",
};

static int parse_level(const char *name, slog_level *out)
{
    if (strcmp(name, "warn") == 0)
        name = "warning";
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (slog_level)i;
            return 0;
        }
    }
    return -1;
}

int server_log_configure(const char *level, const char *format, char *err, size_t n)
{
    slog_level lv = log_level;
    if (level != NULL && parse_level(level, &lv) != 0) {
        snprintf(err, n, "invalid value \"%s\" for flag --log-level: want panic, fatal, error, "
                 "warn, info, debug or trace", level);
        return -1;
    }
    int json = log_json;
    if (format != NULL) {
        if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
            snprintf(err, n, "invalid value \"%s\" for flag --log-format: want text or json", format);
            return -1;
        }
        json = strcmp(format, "json") == 0;
    }
    log_level = lv;
    log_json = json;
    return 0;
}

int server_log_enabled(slog_level level)
{
    return level <= log_level;
}

/* RFC 3339 in UTC, to the second (as logrus' default timestamp). */
static void now_rfc3339(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The JSON line; NULL when out of memory (the caller falls back to text).
 * Keys are added in logrus' (sorted) order. */
static char *json_line(slog_level level, const char *when, const char *msg)
{
    cJSON *obj = cJSON_CreateObject();
    char *text = NULL;
    if (obj != NULL && cJSON_AddStringToObject(obj, "level", level_names[level]) != NULL &&
        cJSON_AddStringToObject(obj, "msg", msg) != NULL &&
        cJSON_AddStringToObject(obj, "time", when) != NULL)
        text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return text;
}

void server_log(slog_level level, const char *fmt, ...)
{
    if (!server_log_enabled(level))
        return;
    char msg[8192], when[32], line[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    now_rfc3339(when, sizeof when);
    char *json = log_json ? json_line(level, when, msg) : NULL;
    if (json != NULL) {
        fprintf(stderr, "%s\n", json);
        cJSON_free(json);
        return;
    }
    /* Info lines keep the plain form they always had; others name their level. */
    int len = snprintf(line, sizeof line, "%s bosk server: %s%s%s\n", when,
                       level == SLOG_INFO ? "" : level_names[level],
                       level == SLOG_INFO ? "" : ": ", msg);
    if (len >= (int)sizeof line) {
        line[sizeof line - 2] = '\n';
        len = (int)sizeof line - 1;
    }
    if (len > 0)
        fwrite(line, 1, (size_t)len, stderr);
}
