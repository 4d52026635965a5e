/* curl_loop.c: the reference for scripts/bench_client.sh. Makes N
 * acquire + release pairs against a boskos server with one libcurl easy
 * handle (one keep-alive connection), the same requests `boskos` sends
 * (same URLs, same headers), and prints "pairs/s". Linked with -lcurl; not part of bosk.
 *
 *   curl_loop URL N TYPE OWNER */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

typedef struct { char data[65536]; size_t len; } buffer;

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    buffer *b = userp;
    size_t len = size * n;
    if (len > sizeof b->data - 1 - b->len)
        return 0;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

static long post(CURL *easy, const char *url, buffer *b)
{
    b->len = 0;
    b->data[0] = '\0';
    curl_easy_setopt(easy, CURLOPT_URL, url);
    if (curl_easy_perform(easy) != CURLE_OK)
        return -1;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: curl_loop URL N TYPE OWNER\n");
        return 2;
    }
    const char *base = argv[1], *type = argv[3], *owner = argv[4];
    long n = atol(argv[2]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *easy = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    h = curl_slist_append(h, "Accept:");
    h = curl_slist_append(h, "Content-Type:");
    /* bosk names itself (src/transport.c): send the same header, so both
     * loops make byte-for-byte the same requests. */
    h = curl_slist_append(h, "User-Agent: bosk");
    buffer *b = calloc(1, sizeof *b);
    if (easy == NULL || h == NULL || b == NULL)
        return 1;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, b);
    char url[2048], name[256];
    /* Pair 0 is the warm-up (it opens the keep-alive connection), as in the
     * bosk script: the rate is that of the n pairs after it. */
    double start = 0;
    for (long i = -1; i < n; i++) {
        if (i == 0)
            start = now();
        snprintf(url, sizeof url, "%s/acquire?dest=busy&owner=%s&state=free&type=%s", base, owner, type);
        if (post(easy, url, b) != 200) {
            fprintf(stderr, "acquire failed: %s\n", b->data);
            return 1;
        }
        const char *p = strstr(b->data, "\"name\":\"");
        if (p == NULL || sscanf(p + 8, "%255[^\"]", name) != 1) {
            fprintf(stderr, "no name in %s\n", b->data);
            return 1;
        }
        snprintf(url, sizeof url, "%s/release?dest=free&name=%s&owner=%s", base, name, owner);
        if (post(easy, url, b) != 200) {
            fprintf(stderr, "release failed: %s\n", b->data);
            return 1;
        }
    }
    printf("%.1f\n", n / (now() - start));
    free(b);
    curl_slist_free_all(h);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    return 0;
}
