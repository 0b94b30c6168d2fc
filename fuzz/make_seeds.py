#!/usr/bin/env python3
"""Writes the seeds of the targets whose inputs are programs rather than text:
fuzz_encode (fuzz/corpus/encode/*.bin: the value-building commands of build_value in
fuzz/fuzz_encode.c) and fuzz_session (fuzz/corpus/session/*.bin: the client's four
configuration bytes, then the server's script in the commands of run_response in
fuzz/fuzz_session.c, whose pieces of HTTP this reads from that file).
Usage: python3 fuzz/make_seeds.py   (from the repository's root)"""
import os
import re

SOURCE = "fuzz/fuzz_session.c"
OUT = "fuzz/corpus/session"
ENCODE_OUT = "fuzz/corpus/encode"


def c_string(literals):
    """The bytes of adjacent C string literals."""
    out = b""
    for body in re.findall(r'"((?:[^"\\]|\\.)*)"', literals):
        i = 0
        while i < len(body):
            if body[i] != "\\":
                out += body[i].encode()
                i += 1
            elif body[i + 1] == "x":
                j = i + 2
                while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                    j += 1
                out += bytes([int(body[i + 2:j], 16) & 255])
                i = j
            else:
                out += {"r": b"\r", "n": b"\n", '"': b'"', "\\": b"\\", "0": b"\0", "t": b"\t"}[body[i + 1]]
                i += 2
    return out


source = open(SOURCE).read()
table = source[source.index("} pieces[] = {"):]
table = table[:table.index("\n};")]
PIECES = [c_string(m) for m in re.findall(r'PIECE\(((?:\s*"(?:[^"\\]|\\.)*")+)\)', table)]
INDEX = {p: i for i, p in enumerate(PIECES)}


def piece(text):
    return bytes([2, INDEX[text]])


def raw(data):
    return bytes([0, len(data)]) + data


def status(code, http11=True):
    return bytes([4 | (128 if http11 else 0), code >> 8, code & 255])


def content_length(n):
    return bytes([5, 0, n])


def chunk(n):
    return bytes([5, 1, n])


def long_header(kib):
    return bytes([5, 2, kib])


def long_body(kib):
    return bytes([5, 3, kib])


PAUSE = bytes([6])
KEEP, CLOSE, RESET = bytes([7, 0]), bytes([7, 1]), bytes([7, 2])
CRLF = piece(b"\r\n")
OK = piece(b"HTTP/1.1 200 OK\r\n")
GROUP = b'{"groupId":"g1","tags":{"name":"n"}}'
LIST = b'[{"groupId":"g1"},{"groupId":"g2","n":1.5e3}]'
SLOW = b'{"code":"FAK0429","message":"slow down"}'
GZIP = PIECES[-1]
APIS = [0, 0, 0, 1, 1, 2, 3, 4]  # as run() in fuzz_session.c maps the first byte


def config(api=0, method=0, paginated=0, requests=1, max_body=None, body=None, path=0):
    """api: 0 perform, 1 multi, 2 multi:remove, 3 session:close, 4 multi:close while
    running; method: an index into run()'s methods; body: an index into its bodies."""
    c0 = APIS.index(api) | method << 3 | paginated << 6
    c1 = (requests - 1) | (4 if max_body is not None else 0) | ((8 | body << 4) if body is not None else 0)
    return bytes([c0, c1, (max_body - 1) if max_body else 0, path])


SEEDS = {
    "get_200": config() + OK + piece(b"Content-Type: application/json\r\n")
    + content_length(len(GROUP)) + CRLF + piece(GROUP) + KEEP,
    "page_chunked": config(paginated=1, path=1) + OK + piece(b"Transfer-Encoding: chunked\r\n")
    + piece(b"X-Soracom-Next-Key: key-1\r\n")
    + piece(b"Link: </v1/groups?last_evaluated_key=k%201>; rel=next\r\n") + CRLF
    + raw(b"%x\r\n" % len(LIST) + LIST[:10]) + PAUSE + raw(LIST[10:] + b"\r\n")
    + piece(b"0\r\n\r\n") + KEEP,
    "retry_429_then_200": config(requests=2) + piece(b"HTTP/1.1 429 Too Many Requests\r\n")
    + piece(b"Retry-After: 5\r\n") + piece(b"X-Soracom-Ratelimit-Remaining: 0000000000000001\r\n")
    + piece(b"X-Soracom-Ratelimit-Limit: 10\r\n") + content_length(len(SLOW)) + CRLF + piece(SLOW)
    + KEEP + OK + content_length(len(LIST)) + CRLF + piece(LIST) + KEEP,
    "gzip": config() + OK + piece(b"Content-Encoding: gzip\r\n") + content_length(len(GZIP)) + CRLF
    + piece(GZIP) + KEEP,
    "multi_200": config(api=1, paginated=1) + OK + content_length(len(GROUP)) + CRLF + piece(GROUP)
    + KEEP,
    "multi_remove": config(api=2, requests=2) + OK + content_length(200) + CRLF + PAUSE * 2
    + raw(b'{"a":') + PAUSE * 3 + CLOSE + piece(b"HTTP/1.1 204 No Content\r\n") + CRLF + KEEP,
    "multi_session_close": config(api=3) + OK + content_length(100) + CRLF + PAUSE * 4
    + raw(b"[1,2") + PAUSE * 6 + KEEP,
    "multi_close": config(api=4, requests=2) + OK + PAUSE * 8 + CRLF + KEEP + OK
    + content_length(2) + CRLF + raw(b"{}") + KEEP,
    "reset_mid_body": config(method=1, body=1, requests=2) + OK + content_length(100) + CRLF
    + raw(b'{"groupId":') + PAUSE + RESET + piece(b"HTTP/1.1 201 Created\r\n") + content_length(2)
    + CRLF + raw(b"{}") + KEEP,
    "long_header": config() + OK + long_header(120) + CRLF + KEEP,
    "max_body": config(max_body=64) + OK + content_length(200) + CRLF + long_body(1) + KEEP,
    "head_204": config(method=4, requests=2) + piece(b"HTTP/1.1 204 No Content\r\n")
    + piece(b"Content-Length: 2\r\n") + CRLF + KEEP + OK + piece(b"Content-Length: 0\r\n") + CRLF
    + KEEP,
    "status_502_html": config(method=3) + status(502) + piece(b"Content-Type: application/json\r\n")
    + CRLF + piece(b"<html><body>502 Bad Gateway</body></html>") + CLOSE,
    "interim_100_trailer": config(method=2, body=3) + piece(b"HTTP/1.1 100 Continue\r\n\r\n") + OK
    + piece(b"Transfer-Encoding: chunked\r\n") + CRLF + raw(b"2\r\n{}\r\n")
    + piece(b"0\r\nX-Trailer: t\r\n\r\n") + KEEP,
    "garbage": config() + raw(b"HTTP/1.1 2OO OK\r\nX: \x00\x01\r\n\r\n"),
    "empty_reply": config(requests=3),
}



# ---- fuzz_encode: ops of build_value (op % 24) ----

def e_short(text):  # push_string, short form
    assert len(text) < 128
    return bytes([len(text)]) + text


def e_interesting(i):  # push_string, from interesting_strings
    return bytes([0x80 | i])


def e_long(unit, count):  # push_string, unit repeated count * 4 + 1 bytes
    return bytes([0xC0 | (len(unit) - 1), count >> 8, count & 255]) + unit


def e_string(text):
    return bytes([7]) + e_short(text)


def e_int(n):  # any 64-bit integer
    return bytes([2]) + (n & (2**64 - 1)).to_bytes(8, "big")


def e_small(n):
    return bytes([3, n & 255])


def e_double_bits(b):
    return bytes([4]) + b


def e_number(i):  # interesting_numbers[i], then NaN, inf, -inf
    return bytes([5, i])


def e_array(values, flags=0, big=False):
    return bytes([14 if big else 12, flags, len(values)]) + b"".join(values)


def e_object(members, flags=0):
    return bytes([15, flags, len(members)]) + b"".join(e_short(k) + v for k, v in members)


def e_any_keys(pairs, flags=0):
    return bytes([18, flags, len(pairs)]) + b"".join(k + v for k, v in pairs)


TRUE, FALSE, NULL, EMPTY_ARRAY = bytes([1 | 32]), bytes([1]), bytes([9]), bytes([10])
FUNCTION = bytes([11 | 32])
ENCODE_SEEDS = {
    "group": bytes([0]) + e_object([
        (b"groupId", e_string(b"g1")),
        (b"tags", e_object([(b"name", e_string(b"n")), (b"count", e_small(3))])),
        (b"list", e_array([e_small(1), e_number(4), e_string(b"s"), TRUE, NULL])),
        (b"empty", e_array([], flags=1)),
        (b"object", e_object([])),
    ]),
    "numbers": bytes([0]) + e_array([e_number(i) for i in range(32)], big=True),
    "numbers_nan_inf": bytes([0]) + e_array([e_number(i) for i in range(30, 35)]),
    "integers": bytes([0]) + e_array([e_int(0), e_int(-1), e_int(2**63 - 1), e_int(-2**63),
                                      e_int(2**53 + 1), bytes([6, 0]), bytes([6, 1])]),
    "strings": bytes([0]) + e_array([bytes([8]) + e_interesting(i) for i in range(33)], big=True),
    "cjson_marks": bytes([0]) + e_array([e_array([], flags=2), e_array([], flags=3), EMPTY_ARRAY,
                                         e_object([], flags=4)]),
    "self_cycle": bytes([0]) + bytes([23]) + e_short(b"self"),
    "shared_and_cycle": bytes([0]) + e_array([e_object([(b"a", e_small(1))]), bytes([20, 0, 1]),
                                              bytes([20, 0, 0])]),
    "chain_999": bytes([0]) + bytes([21, 9]) + e_small(1),
    "chain_1000_objects": bytes([0]) + bytes([21 | 32, 10]) + NULL,
    "mixed_keys": bytes([0]) + e_any_keys([(e_small(1), TRUE), (e_string(b"k"), FALSE)]),
    "holes": bytes([0]) + bytes([19, 0, 4, 0x80 | 2]),
    "not_json": bytes([0]) + e_array([FUNCTION, bytes([11]), bytes([11 | 64])]),
    "raising_metatable": bytes([0]) + bytes([22]) + e_object([(b"k", e_small(1))], flags=4),
    "long_root_bad_utf8": bytes([1]) + e_long(b"root", 2000) + e_object([
        (b"key", e_object([(b"\xff", e_small(1))]))]),
    "long_key_cycle": bytes([0]) + bytes([23]) + e_long(b"k\xc3\xa9", 200),
    "nan_deep": bytes([0]) + e_object([(b"a", e_array([e_object([(b"b", e_number(32))])]))]),
}

os.makedirs(ENCODE_OUT, exist_ok=True)
for name, data in ENCODE_SEEDS.items():
    with open(os.path.join(ENCODE_OUT, name + ".bin"), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(ENCODE_SEEDS), ENCODE_OUT))

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(data)
print("%d seeds in %s (%d pieces)" % (len(SEEDS), OUT, len(PIECES)))
