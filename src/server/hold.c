/* hold.c: see hold.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "server/hold.h"

#define NS 1000000000LL

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "Z", "+HH:MM" or "-HH:MM" after the seconds: the offset in seconds. */
static int parse_zone(const char *p, int64_t *offset)
{
    int hh, mm;
    if (p[0] == 'Z' && p[1] == '\0') {
        *offset = 0;
        return 0;
    }
    if ((p[0] != '+' && p[0] != '-') || strlen(p) != 6 || p[3] != ':' ||
        digits(p + 1, 2, &hh) || digits(p + 4, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    *offset = (p[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
    return 0;
}

int hold_parse_time(const char *s, int64_t *ns)
{
    struct tm tm = { 0 };
    int year, mon, day, hour, min, sec;
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':' || digits(s, 4, &year) || digits(s + 5, 2, &mon) ||
        digits(s + 8, 2, &day) || digits(s + 11, 2, &hour) || digits(s + 14, 2, &min) ||
        digits(s + 17, 2, &sec) || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
        min > 59 || sec > 60)
        return -1;
    const char *p = s + 19;
    int64_t frac = 0, scale = NS;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    int64_t offset;
    if (parse_zone(p, &offset) != 0)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    int64_t secs = (int64_t)t - offset;
    if (secs > INT64_MAX / NS - 1)
        *ns = INT64_MAX;       /* past 2262: as good as forever */
    else if (secs < INT64_MIN / NS + 1)
        *ns = INT64_MIN;
    else
        *ns = secs * NS + frac;
    return 0;
}

int hold_active(const char *userdata, int64_t now_ns)
{
    if (strstr(userdata, "\"" HOLD_UNTIL_KEY "\"") == NULL)
        return 0;      /* the common case: no parse */
    cJSON *o = cJSON_Parse(userdata);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, HOLD_UNTIL_KEY);
    int64_t until;
    int held = cJSON_IsString(v) && hold_parse_time(v->valuestring, &until) == 0 && until > now_ns;
    cJSON_Delete(o);
    return held;
}
