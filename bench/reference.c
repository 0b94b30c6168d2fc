/* The reference for bench/get_group.lua: a plain, hand-written libcurl loop that
 * fetches one group again and again over a single reused easy handle (so over one
 * keep-alive connection), the way a careful C client would.
 *
 *   reference URL API_KEY TOKEN USER_AGENT SECONDS
 *   reference URL API_KEY TOKEN USER_AGENT -N
 *
 * A negative last argument (-N) makes exactly N requests instead of running for a
 * time, with no clock read in the loop (bench/instructions counts instructions per
 * request under callgrind with it).
 *
 * URL is the full group URL (<endpoint>/groups/<id>). It sends the headers the Lua
 * client sends (Accept, X-Soracom-API-Key, X-Soracom-Token, User-Agent, and the
 * Accept-Encoding that CURLOPT_ACCEPT_ENCODING "" adds), sets the same transfer
 * options, and collects every body into a growing buffer that is reused across
 * requests -- but never parses it: that is the work the library does on top.
 * Each response must have status 200 and a non-empty body.
 *
 * Prints one line: "reference requests=N seconds=S rps=R".
 * Build: cc -std=c99 -O2 -Wall -Wextra -o reference reference.c -lcurl */
#define _POSIX_C_SOURCE 199309L /* clock_gettime in strict C99 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    buffer *b = (buffer *)userdata;
    size_t n = size * count;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *grown;
        while (cap < b->len + n)
            cap *= 2;
        grown = (char *)realloc(b->data, cap);
        if (grown == NULL)
            return 0; /* curl reports CURLE_WRITE_ERROR */
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name,
                                     const char *value)
{
    char line[1024];
    struct curl_slist *grown;
    snprintf(line, sizeof line, "%s: %s", name, value);
    grown = curl_slist_append(list, line);
    if (grown == NULL) {
        fprintf(stderr, "reference: out of memory\n");
        exit(1);
    }
    return grown;
}

int main(int argc, char **argv)
{
    CURL *curl;
    struct curl_slist *headers = NULL;
    buffer body = {NULL, 0, 0};
    char error[CURL_ERROR_SIZE];
    double seconds, start, elapsed = 0;
    long requests = 0, count = 0;
    int failed = 0;

    if (argc != 6 || (seconds = atof(argv[5])) == 0) {
        fprintf(stderr, "usage: %s URL API_KEY TOKEN USER_AGENT SECONDS|-REQUESTS\n", argv[0]);
        return 2;
    }
    if (seconds < 0)
        count = (long)-seconds;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (curl = curl_easy_init()) == NULL) {
        fprintf(stderr, "reference: curl initialisation failed\n");
        return 1;
    }
    headers = add_header(headers, "Accept", "application/json");
    headers = add_header(headers, "X-Soracom-API-Key", argv[2]);
    headers = add_header(headers, "X-Soracom-Token", argv[3]);

    /* The options the library's session sets, so both send the same bytes. */
    curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, argv[4]);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);

    start = now();
    do {
        CURLcode code;
        long status = 0;
        body.len = 0;
        error[0] = '\0';
        code = curl_easy_perform(curl);
        if (code != CURLE_OK) {
            fprintf(stderr, "reference: request %ld: %s\n", requests + 1,
                    error[0] ? error : curl_easy_strerror(code));
            failed = 1;
            break;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200 || body.len == 0) {
            fprintf(stderr, "reference: request %ld: status %ld, %lu body bytes\n",
                    requests + 1, status, (unsigned long)body.len);
            failed = 1;
            break;
        }
        requests++;
        if (count > 0)
            continue;
        elapsed = now() - start;
    } while (count > 0 ? requests < count : elapsed < seconds);
    if (count > 0)
        elapsed = now() - start;

    if (!failed)
        printf("reference requests=%ld seconds=%.3f rps=%.1f\n", requests, elapsed,
               (double)requests / elapsed);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    free(body.data);
    curl_global_cleanup();
    return failed;
}
