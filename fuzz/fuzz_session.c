/* libFuzzer target: a curl session of the module (session.c, multi.c, kept_headers.c,
 * response.c, system.c's clock) against a local HTTP server that answers what the input
 * says.
 *
 * The server is a thread of this process listening on a loopback port. The input's
 * first bytes choose the client's side: perform, or a multi handle (prepare, add, poll
 * with wait_hint, finish), optionally cut short by multi:remove, session:close or
 * multi:close while the transfer runs; the method, a request body, paginated or not,
 * max_body_size, the path, and one to three requests on the same session. The rest is
 * the server's script, a list of commands (see run_response): raw bytes, pieces of
 * HTTP (status lines, headers the core keeps, chunks, gzip bodies, lines past
 * libcurl's and the core's limits), short pauses that cut the response into several
 * reads, and the end of a response: keep the connection for the next request, close it
 * or reset it. When the script is used up every connection is closed at once.
 *
 * Every result is checked for its shape: value, next_key (nil or a string), status (an
 * integer 100-999) -- or nil and an error table with a kind and a message (a network
 * error has a curl_code; retry_after, when present, is 0-86400 seconds); poll returns
 * only the session it runs; wait_hint gives a timeout and sockets of the right types;
 * last_rate_limit is nil or non-negative integers. Then the whole thing runs again with
 * Lua's allocator failing part-way (see fuzz_common.h), against the same script.
 *
 * Build and run: scripts/fuzz. Reproduce: build/fuzz/fuzz_session CRASH_FILE
 * (FUZZ_SESSION_VERBOSE=1 prints every result). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <lualib.h>
#include "fuzz_common.h"

int luaopen_soracom_groups_core(lua_State *L);

/* ---- the server ---- */

static int listen_fd = -1;
static int server_port;
static int wake[2] = {-1, -1}; /* written to stop the server */
static pthread_t server_thread;

typedef struct {
    const uint8_t *p; /* the script: what is left of it */
    size_t n;
} script;

typedef struct {
    const uint8_t *data;
    size_t size;
    script server; /* set before each run */
    size_t config_len;
} session_job;

static char request[65536];   /* only the server thread uses these */
static char big[300 * 1024];

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        abort();
}

/* Waits until fd (or, when other >= 0, other) is ready for events, at most timeout_ms
 * (-1: no limit). Returns the fd that is, -2 on the timeout, -1 when the server is told
 * to stop. */
static int wait_ready_for(int fd, short events, int other, int timeout_ms)
{
    struct pollfd fds[3];
    int n = 2;
    fds[0].fd = wake[0];
    fds[0].events = POLLIN;
    fds[1].fd = fd;
    fds[1].events = events;
    if (other >= 0) {
        fds[2].fd = other;
        fds[2].events = POLLIN;
        n = 3;
    }
    for (;;) {
        int r = poll(fds, (nfds_t)n, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return -2;
        if (r < 0 || fds[0].revents)
            return -1;
        if (fds[1].revents)
            return fd;
        if (n == 3 && fds[2].revents)
            return other;
    }
}

static int wait_ready(int fd, short events, int other)
{
    return wait_ready_for(fd, events, other, -1);
}

/* Accepts the next connection; -1 when told to stop. */
static int accept_next(void)
{
    for (;;) {
        int conn;
        if (wait_ready(listen_fd, POLLIN, -1) < 0)
            return -1;
        conn = accept(listen_fd, NULL, NULL);
        if (conn >= 0) {
            int one = 1;
            set_nonblocking(conn);
            setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return conn;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
            abort();
    }
}

static void reset_connection(int fd)
{
    struct linger hard = {1, 0}; /* close sends a RST */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
}

/* Content-Length of the request head in request[0..head), 0 if none. */
static size_t request_body_length(size_t head)
{
    size_t i, n = 0;
    static const char name[] = "\ncontent-length:";
    for (i = 0; i + sizeof name - 1 <= head; i++) {
        size_t k;
        for (k = 0; k < sizeof name - 1; k++) {
            char c = request[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != name[k])
                break;
        }
        if (k == sizeof name - 1) {
            for (i += k; i < head && request[i] == ' '; i++) {
            }
            for (; i < head && request[i] >= '0' && request[i] <= '9'; i++)
                n = n * 10 + (size_t)(request[i] - '0');
            return n;
        }
    }
    return 0;
}

/* How long a connection kept after a response waits for the next request: a client
 * still reading a response cut short (say, a Content-Length never reached) would
 * otherwise wait for its own timeout. A client that comes back later finds the
 * connection closed and opens another, as with any server. */
#define KEEP_ALIVE_MS 30

/* Reads one request (head, and its body by Content-Length) on *conn, waiting at most
 * KEEP_ALIVE_MS for it to start when kept. A new connection arriving meanwhile replaces
 * *conn (the client gave the old one up). Returns 1 for a request, 0 when the
 * connection ended first (*conn is then -1), -1 when told to stop. */
static int read_request(int *conn, int kept)
{
    size_t len = 0, head = 0, want = 0;
    for (;;) {
        ssize_t got;
        int ready = wait_ready_for(*conn, POLLIN, listen_fd, kept && len == 0 ? KEEP_ALIVE_MS : -1);
        if (ready == -2) {
            close(*conn);
            *conn = -1;
            return 0;
        }
        if (ready < 0)
            return -1;
        if (ready == listen_fd) {
            int fresh = accept(listen_fd, NULL, NULL);
            if (fresh >= 0) {
                int one = 1;
                close(*conn);
                set_nonblocking(fresh);
                setsockopt(fresh, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                *conn = fresh;
                kept = 0;
                len = head = want = 0;
            }
            continue;
        }
        got = recv(*conn, request + len, sizeof request - len, 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (got <= 0) {
            close(*conn);
            *conn = -1;
            return 0;
        }
        len += (size_t)got;
        if (head == 0) {
            size_t i;
            for (i = 3; i < len; i++)
                if (memcmp(request + i - 3, "\r\n\r\n", 4) == 0)
                    break;
            if (i < len) {
                head = i + 1;
                want = head + request_body_length(head);
            } else if (len == sizeof request) {
                return 1; /* a head this large: answer anyway */
            }
        }
        if (head != 0 && len >= want)
            return 1;
        if (len == sizeof request)
            len = head = want = 0; /* a body this large: forget it */
    }
}

/* libcurl before 8.1.0 (Debian 12 has 7.88.1) keeps a pointer to the last header it
 * stored across transfers of one handle, and unfolds a folded first header line of the
 * next response onto it, after freeing it: a use after free, then a realloc of freed
 * memory, inside libcurl (curl issue 11101, fixed by curl's commit "headers: clear
 * (possibly) lingering pointer in init", 8.1.0). The core reuses its handles, so any
 * server can trigger it; scripts/sanitize's report of it is in the notes. With
 * such a libcurl the server here never folds the first header line of a response (its
 * first byte becomes 'X'), so that the fuzzer looks for bugs of the core.
 * fold_guard: 0 off, 1 in the status line, 2 at the start of the first header line. */
static int avoid_curl_11101;
static int fold_guard;

/* Sends n bytes; on a connection the client closed, closes ours (*conn = -1) and drops
 * the rest. Returns -1 when told to stop. */
static int send_raw(int *conn, const char *bytes, size_t n);

static int send_all(int *conn, const char *bytes, size_t n)
{
    size_t i;
    for (i = 0; fold_guard != 0 && i < n; i++) {
        if (fold_guard == 1) {
            if (bytes[i] == '\n')
                fold_guard = 2;
        } else {
            fold_guard = 0;
            if (bytes[i] == ' ' || bytes[i] == '\t') {
                if (send_raw(conn, bytes, i) < 0 || send_raw(conn, "X", 1) < 0)
                    return -1;
                return send_raw(conn, bytes + i + 1, n - i - 1);
            }
        }
    }
    return send_raw(conn, bytes, n);
}

static int send_raw(int *conn, const char *bytes, size_t n)
{
    while (*conn >= 0 && n > 0) {
        ssize_t sent = send(*conn, bytes, n, MSG_NOSIGNAL);
        if (sent > 0) {
            bytes += sent;
            n -= (size_t)sent;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_ready(*conn, POLLOUT, -1) < 0)
                return -1;
        } else {
            close(*conn);
            *conn = -1;
        }
    }
    return 0;
}

static uint8_t script_byte(script *s)
{
    uint8_t b;
    if (s->n == 0)
        return 0;
    b = *s->p++;
    s->n--;
    return b;
}

#define PIECE(s) {s, sizeof s - 1}
static const struct {
    const char *text;
    size_t len;
} pieces[] = {
    PIECE("HTTP/1.1 200 OK\r\n"),
    PIECE("HTTP/1.1 201 Created\r\n"),
    PIECE("HTTP/1.1 204 No Content\r\n"),
    PIECE("HTTP/1.1 400 Bad Request\r\n"),
    PIECE("HTTP/1.1 404 Not Found\r\n"),
    PIECE("HTTP/1.1 429 Too Many Requests\r\n"),
    PIECE("HTTP/1.1 500 Internal Server Error\r\n"),
    PIECE("HTTP/1.1 503 Service Unavailable\r\n"),
    PIECE("HTTP/1.1 100 Continue\r\n\r\n"),
    PIECE("HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\n"),
    PIECE("HTTP/1.0 200 OK\r\n"),
    PIECE("HTTP/1.1 200\r\n"),
    PIECE("Content-Type: application/json\r\n"),
    PIECE("Content-Length: 0\r\n"),
    PIECE("Content-Length: 2\r\n"),
    PIECE("Content-Length: 18446744073709551616\r\n"),
    PIECE("Transfer-Encoding: chunked\r\n"),
    PIECE("Connection: close\r\n"),
    PIECE("Connection: keep-alive\r\n"),
    PIECE("Retry-After: 5\r\n"),
    PIECE("Retry-After: 99999999999999999999\r\n"),
    PIECE("Retry-After: Wed, 21 Oct 2037 07:28:00 GMT\r\n"),
    PIECE("X-Soracom-Next-Key: key-1\r\n"),
    PIECE("x-soracom-next-key: \r\n"),
    PIECE("Link: </v1/groups?last_evaluated_key=k%201>; rel=next\r\n"),
    PIECE("Link: <https://api.soracom.io/v1/groups?last_evaluated_key=a&limit=2>; rel=\"next\", <x>; rel=prev\r\n"),
    PIECE("X-Soracom-Ratelimit-Limit: 10\r\n"),
    PIECE("X-Soracom-Ratelimit-Remaining: 0000000000000001\r\n"),
    PIECE("X-Soracom-Ratelimit-Seconds-Before-Refresh: 3\r\n"),
    PIECE("X-Soracom-Ratelimit-Remaining: 99999999999999999999999\r\n"),
    PIECE("Content-Encoding: gzip\r\n"),
    PIECE("Content-Encoding: deflate\r\n"),
    PIECE(" folded continuation\r\n"),
    PIECE("\r\n"),
    PIECE("{\"groupId\":\"g1\",\"tags\":{\"name\":\"n\"}}"),
    PIECE("[{\"groupId\":\"g1\"},{\"groupId\":\"g2\",\"n\":1.5e3}]"),
    PIECE("{\"code\":\"AUM0001\",\"message\":\"denied\"}"),
    PIECE("{\"code\":\"FAK0429\",\"message\":\"slow down\"}"),
    PIECE("<html><body>502 Bad Gateway</body></html>"),
    PIECE("[1,2,"),
    PIECE("0\r\n\r\n"),
    PIECE("0\r\nX-Trailer: t\r\n\r\n"),
    /* gzip of {"a":1} */
    PIECE("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xab\x56\x4a\x54\xb2\x32\xac\x05\x00\xaf"
          "\xac\x1b\x56\x07\x00\x00\x00"),
};

/* Sends one response as the script says, up to its end command or the script's end.
 * Returns 1 to keep the connection for the next request, 0 when it is gone, -1 when
 * told to stop. */
static int run_response(script *s, int *conn)
{
    char text[128];
    while (s->n > 0) {
        uint8_t op = script_byte(s);
        size_t n, i;
        int r = 0;
        switch (op % 8) {
        case 0: case 1: /* raw bytes */
            n = script_byte(s);
            if (n > s->n)
                n = s->n;
            r = send_all(conn, (const char *)s->p, n);
            s->p += n;
            s->n -= n;
            break;
        case 2: case 3: /* a piece of HTTP */
            i = script_byte(s) % (sizeof pieces / sizeof pieces[0]);
            r = send_all(conn, pieces[i].text, pieces[i].len);
            break;
        case 4: { /* a status line of any code */
            unsigned code = script_byte(s);
            code = (code << 8 | script_byte(s)) % 1100;
            n = (size_t)snprintf(text, sizeof text, "HTTP/1.%d %u X\r\n", op >> 7, code);
            r = send_all(conn, text, n);
            break;
        }
        case 5: { /* sizes: Content-Length, a chunk, a long header line, a long body */
            uint8_t how = script_byte(s), k = script_byte(s);
            switch (how % 4) {
            case 0:
                n = (size_t)snprintf(text, sizeof text, "Content-Length: %u\r\n", (unsigned)k);
                r = send_all(conn, text, n);
                break;
            case 1:
                n = (size_t)snprintf(text, sizeof text, "%x\r\n", (unsigned)k);
                r = send_all(conn, text, n);
                memset(big, 'c', k);
                if (r == 0)
                    r = send_all(conn, big, k);
                if (r == 0)
                    r = send_all(conn, "\r\n", 2);
                break;
            case 2: /* a header line of k KiB: the core's and libcurl's limits */
                n = (size_t)k * 1024;
                memcpy(big, "X-Pad: ", 7);
                memset(big + 7, 'p', n);
                memcpy(big + 7 + n, "\r\n", 2);
                r = send_all(conn, big, n + 9);
                break;
            default: /* k KiB of body: max_body_size */
                n = (size_t)k * 1024;
                memset(big, ' ', n);
                r = send_all(conn, big, n);
                break;
            }
            break;
        }
        case 6: { /* a pause: the client reads what came so far */
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            break;
        }
        default: /* the end of the response */
            switch (script_byte(s) % 3) {
            case 0:
                return *conn >= 0;
            case 1:
                if (*conn >= 0)
                    close(*conn);
                *conn = -1;
                return 0;
            default:
                if (*conn >= 0)
                    reset_connection(*conn);
                *conn = -1;
                return 0;
            }
        }
        if (r < 0)
            return -1;
    }
    /* the script is used up */
    if (*conn >= 0)
        close(*conn);
    *conn = -1;
    return 0;
}

static void *serve(void *arg)
{
    script *s = (script *)arg;
    int conn = -1, kept = 0;
    for (;;) {
        int r;
        if (conn < 0) {
            if ((conn = accept_next()) < 0)
                break;
            kept = 0;
        }
        r = read_request(&conn, kept);
        if (r < 0)
            break;
        if (r == 0)
            continue;
        if (s->n == 0) { /* nothing left to say */
            close(conn);
            conn = -1;
            continue;
        }
        fold_guard = avoid_curl_11101;
        r = run_response(s, &conn);
        if (r < 0)
            break;
        kept = r;
    }
    if (conn >= 0)
        close(conn);
    return NULL;
}

static void start_listening(void)
{
    struct sockaddr_in address;
    socklen_t size = sizeof address;
    int one = 1;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || pipe(wake) != 0)
        abort();
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0; /* any free port */
    if (bind(listen_fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        listen(listen_fd, 64) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&address, &size) != 0)
        abort();
    server_port = ntohs(address.sin_port);
    avoid_curl_11101 = curl_version_info(CURLVERSION_NOW)->version_num < 0x080100;
    set_nonblocking(listen_fd);
    set_nonblocking(wake[0]);
}

/* Before each run: a server thread with the script from the start; after: stopped. */
static void around_run(void *arg, int before)
{
    session_job *job = (session_job *)arg;
    char byte;
    if (before) {
        int conn;
        while ((conn = accept(listen_fd, NULL, NULL)) >= 0) /* left from the last run */
            close(conn);
        while (read(wake[0], &byte, 1) == 1) {
        }
        job->server.p = job->data + job->config_len;
        job->server.n = job->size - job->config_len;
        if (pthread_create(&server_thread, NULL, serve, &job->server) != 0)
            abort();
    } else {
        byte = 0;
        if (write(wake[1], &byte, 1) != 1)
            abort();
        pthread_join(server_thread, NULL);
    }
}

/* ---- the client ---- */

/* The driver, run with (core, url, config, checks). */
static const char driver[] =
    "local core, url, cfg, checks, is_integer, verbose = ...\n"
    "local function check(ok, what)\n"
    "  if checks and not ok then error('session: check failed: ' .. what, 0) end\n"
    "end\n"
    "local function rate_limit_ok(limits)\n"
    "  if limits == nil then return true end\n"
    "  if type(limits) ~= 'table' then return false end\n"
    "  for key, v in pairs(limits) do\n"
    "    if (key ~= 'limit' and key ~= 'remaining' and key ~= 'refresh') or not is_integer(v) or v < 0 then\n"
    "      return false\n"
    "    end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "local function check_results(value, next_key, status, limits, ...)\n"
    "  if verbose then\n"
    "    local e = type(next_key) == 'table' and next_key or {}\n"
    "    print('session:', value, next_key, status, e.kind, e.message, e.status, e.retry_after)\n"
    "  end\n"
    "  check(select('#', ...) == 0, 'at most four results')\n"
    "  check(rate_limit_ok(value == nil and type(next_key) == 'table' and next_key.rate_limit or limits),\n"
    "        'rate limits: nil or {limit, remaining, refresh} of non-negative integers')\n"
    "  if value == nil then\n"
    "    local e = next_key\n"
    "    check(type(e) == 'table', 'an error table')\n"
    "    if type(e) ~= 'table' then return end\n"
    "    check(type(e.kind) == 'string' and type(e.message) == 'string', 'kind and message')\n"
    "    if e.kind == 'network' then check(is_integer(e.curl_code), 'curl_code') end\n"
    "    if e.status ~= nil then\n"
    "      check(is_integer(e.status) and e.status >= 100 and e.status <= 999, 'error status')\n"
    "    end\n"
    "    if e.retry_after ~= nil then\n"
    "      check(type(e.retry_after) == 'number' and e.retry_after >= 0 and\n"
    "            e.retry_after <= 86400, 'retry_after')\n"
    "    end\n"
    "  else\n"
    "    check(is_integer(status) and status >= 100 and status <= 999, 'status')\n"
    "    check(next_key == nil or type(next_key) == 'string', 'next_key')\n"
    "  end\n"
    "end\n"
    "local function check_rate_limit(s)\n"
    "  local r = s:last_rate_limit()\n"
    "  check(r == nil or type(r) == 'table', 'last_rate_limit')\n"
    "  if type(r) == 'table' then\n"
    "    for k, v in pairs(r) do\n"
    "      check(k == 'limit' or k == 'remaining' or k == 'refresh', 'a rate-limit field')\n"
    "      check(is_integer(v) and v >= 0, 'a rate-limit value')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local s = core.session { timeout = 0.25, connect_timeout = 0.25,\n"
    "                         max_body_size = cfg.max_body, user_agent = 'fuzz' }\n"
    "s:set_headers { 'X-Soracom-API-Key: k', 'X-Soracom-Token: t' }\n"
    "for _ = 1, cfg.requests do\n"
    "  local target = url .. cfg.path\n"
    "  if cfg.api == 0 then\n"
    "    check_results(s:perform(cfg.method, target, cfg.body, cfg.paginated))\n"
    "  else\n"
    "    local m = core.multi { max_connects = 2 }\n"
    "    s:prepare(cfg.method, target, cfg.body, cfg.paginated)\n"
    "    local added, why = m:add(s)\n"
    "    check(added == true or type(why) == 'string', 'multi:add')\n"
    "    local done, deadline, polls = not added, core.now() + 2, 0\n"
    "    while not done do\n"
    "      local ended = m:poll(0.02)\n"
    "      polls = polls + 1\n"
    "      check(type(ended) == 'table' and #ended <= 1, 'poll returns one session at most')\n"
    "      if ended[1] ~= nil then\n"
    "        check(rawequal(ended[1], s), 'poll returns the session')\n"
    "        check_results(s:finish())\n"
    "        done = true\n"
    "      else\n"
    "        local timeout, sockets = m:wait_hint()\n"
    "        check(timeout == nil or (type(timeout) == 'number' and timeout >= 0), 'wait_hint timeout')\n"
    "        check(type(sockets) == 'table', 'wait_hint sockets')\n"
    "        for _, w in ipairs(sockets) do\n"
    "          check(is_integer(w.fd) and type(w.read) == 'boolean' and type(w.write) == 'boolean',\n"
    "                'a wait_hint socket')\n"
    "        end\n"
    "        if polls == 2 and cfg.api == 2 then m:remove(s); done = true\n"
    "        elseif polls == 2 and cfg.api == 3 then s:close(); m:close(); return\n"
    "        elseif polls == 2 and cfg.api == 4 then m:close(); done = true\n"
    "        elseif core.now() > deadline then\n"
    "          check(false, 'a transfer with a 0.25 s timeout still runs after 2 s')\n"
    "          m:remove(s); done = true\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    check(m:count() == 0, 'the multi handle runs nothing more')\n"
    "    m:close()\n"
    "  end\n"
    "  check_rate_limit(s)\n"
    "end\n"
    "s:close()\n";

static int is_integer(lua_State *L)
{
#if SG_HAS_INTEGERS
    lua_pushboolean(L, lua_isinteger(L, 1));
#else
    lua_pushboolean(L, lua_type(L, 1) == LUA_TNUMBER &&
                           lua_tonumber(L, 1) == (lua_Number)(long long)lua_tonumber(L, 1));
#endif
    return 1;
}

#define CONFIG_BYTES 4

/* run(job, checks) */
static int run(lua_State *L)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD",
                                          "PATCH", "OPTIONS", "X-CUSTOM"};
    static const int apis[] = {0, 0, 0, 1, 1, 2, 3, 4};
    const session_job *job = (const session_job *)lua_touserdata(L, 1);
    int checks = lua_toboolean(L, 2);
    uint8_t c[CONFIG_BYTES] = {0};
    char path[40];
    size_t i, n = 0;
    char url[64];

    lua_settop(L, 0);
    memcpy(c, job->data, job->config_len);
    if (luaL_loadbuffer(L, driver, sizeof driver - 1, "=fuzz_session") != 0)
        return lua_error(L);
#if LUA_VERSION_NUM >= 502
    luaL_requiref(L, "_G", luaopen_base, 1);
    lua_pop(L, 1);
#else
    lua_pushcfunction(L, luaopen_base);
    lua_call(L, 0, 0);
#endif
    lua_pushcfunction(L, luaopen_soracom_groups_core);
    lua_call(L, 0, 1);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", server_port);
    lua_pushstring(L, url);

    lua_createtable(L, 0, 8);
    lua_pushinteger(L, apis[c[0] & 7]);
    lua_setfield(L, -2, "api");
    lua_pushstring(L, methods[(c[0] >> 3) & 7]);
    lua_setfield(L, -2, "method");
    lua_pushboolean(L, (c[0] >> 6) & 1);
    lua_setfield(L, -2, "paginated");
    lua_pushinteger(L, 1 + (c[1] & 3) % 3);
    lua_setfield(L, -2, "requests");
    if (c[1] & 4) { /* a small max_body_size */
        lua_pushinteger(L, 1 + c[2]);
        lua_setfield(L, -2, "max_body");
    }
    if (c[1] & 8) { /* a request body */
        static const struct {
            const char *text;
            size_t len;
        } bodies[] = {PIECE("{}"), PIECE("{\"a\":[1,2]}"), PIECE(""), PIECE("\0\xff bytes")};
        lua_pushlstring(L, bodies[(c[1] >> 4) & 3].text, bodies[(c[1] >> 4) & 3].len);
        lua_setfield(L, -2, "body");
    }
    /* the path: from a few forms, one with bytes curl may refuse */
    switch (c[3] & 3) {
    case 0: n = (size_t)snprintf(path, sizeof path, "/v1/groups"); break;
    case 1: n = (size_t)snprintf(path, sizeof path, "/v1/groups?limit=%d", c[3] >> 2); break;
    case 2: path[0] = '\0'; break;
    default:
        path[n++] = '/';
        for (i = 0; i < 8; i++) {
            char b = (char)(c[3] * (i + 7) + 32);
            if (b != 0)
                path[n++] = b;
        }
        path[n] = '\0';
    }
    lua_pushlstring(L, path, n);
    lua_setfield(L, -2, "path");
    lua_pushboolean(L, checks);
    lua_pushcfunction(L, is_integer);
    lua_pushboolean(L, checks && getenv("FUZZ_SESSION_VERBOSE") != NULL);
    lua_call(L, 6, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    session_job job;
    if (listen_fd < 0)
        start_listening();
    job.data = data;
    job.size = size;
    job.config_len = size < CONFIG_BYTES ? size : CONFIG_BYTES;
    fuzz_run_twice_around(run, &job, data, size, 0, around_run);
    return 0;
}
