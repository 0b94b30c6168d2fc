--- The nginx transport: requests over ngx.socket.tcp cosockets, for Lua code running
-- inside nginx (ngx_lua / OpenResty). A request waits by yielding the running
-- coroutine, so the worker goes on serving others meanwhile. Everything here is Lua:
-- the C core is called only to decode a response that has fully arrived
-- (core.decode_response), never while a socket waits, because LuaJIT cannot yield
-- across a C call.
--
-- A transport has perform(method, url, body, paginated), set_headers(lines),
-- sleep(seconds), event(), run_tasks(source, concurrency) and close(); see
-- lua/soracom/groups/transport/README.md. Results and
-- error kinds are those of the curl session; a network error carries the libcurl
-- error number that means the same (curl_code), so the retry policy is unchanged.
--
-- nginx itself does what libcurl's options do for the curl transport:
-- - TLS is verified (certificate chain and host name, SNI sent) against the CAs in
--   `lua_ssl_trusted_certificate`, with `lua_ssl_verify_depth`. For an IP address in
--   the URL only the chain can be verified: nginx checks DNS names only (a warning
--   goes to the error log once). This nginx cannot
--   take a CA file per socket, so the ca_file, ca_path and proxy options raise in
--   groups.new instead of being silently ignored; the http_proxy/https_proxy
--   environment variables do not apply either. insecure = true turns checks off.
-- - Host names are resolved with the `resolver` directive (nginx does not read
--   /etc/hosts); without one, a name fails with curl_code 6.
-- - Connections are kept alive in the worker's cosocket pool, one pool per
--   scheme + host + port (+ whether TLS was verified), shared by every client of the
--   worker: a later request, of any client, reuses them. A pooled connection the
--   server has closed meanwhile is detected (nothing came back) and the request is
--   sent again on a fresh one, as libcurl does.
--
-- Cosockets are not available in every phase: perform raises in init_by_lua*,
-- init_worker_by_lua*, set_by_lua*, header/body filters, log_by_lua* and the
-- balancer (use transport = "curl" there, or run the call in ngx.timer.at).

-- luacheck: read globals ngx

local core = require "soracom.groups.core"
local nginx_tasks = require "soracom.groups.transport.nginx_tasks"
local phases = require "soracom.groups.transport.phases"

local decode_response = core.decode_response
local concat, min, max, ceil = table.concat, math.min, math.max, math.ceil
local byte, find, sub, lower, format = string.byte, string.find, string.sub, string.lower, string.format

local nginx = {}

local DEFAULT_CONNECT_TIMEOUT = 10       -- seconds, as the curl transport
local DEFAULT_TIMEOUT = 60               -- seconds for the whole request
local DEFAULT_MAX_BODY = 16 * 1024 * 1024
local MAX_BODY_LIMIT = 1024 * 1024 * 1024 -- the curl session's ceiling too
local DEFAULT_KEEPALIVE_TIMEOUT = 60     -- seconds an idle pooled connection is kept
local DEFAULT_POOL_SIZE = 30             -- idle connections kept per pool and worker
local READ_CHUNK = 65536
-- The limits on what precedes and follows a body, in bytes, CR LF included. Their
-- source is csrc/kept_headers.h (libcurl 7.88's own, which the curl transport applies);
-- spec/nginx_spec.lua checks that both transports refuse at the same byte.
local HEADER_LINE_MAX = 100 * 1024 - 1  -- one status or header line
local HEADER_BYTES_MAX = 300 * 1024     -- all head lines of a response (1xx, empty lines too)
local TRAILER_LINE_MAX = 4 * 1024 - 1   -- one trailer line
local TRAILER_BYTES_MAX = HEADER_BYTES_MAX

-- libcurl's error numbers for the same failures (see the README's list).
local CURLE = {
  UNSUPPORTED_PROTOCOL = 1, URL_MALFORMAT = 3, COULDNT_RESOLVE_HOST = 6,
  COULDNT_CONNECT = 7, WEIRD_SERVER_REPLY = 8, PARTIAL_FILE = 18, WRITE_ERROR = 23,
  OUT_OF_MEMORY = 27, OPERATION_TIMEDOUT = 28, SSL_CONNECT_ERROR = 35, GOT_NOTHING = 52,
  SEND_ERROR = 55, RECV_ERROR = 56, PEER_FAILED_VERIFICATION = 60, BAD_CONTENT_ENCODING = 61,
}


local USER_AGENT = "soracom-groups/" .. core.VERSION

local Transport = {}
Transport.__index = Transport

local function network_error(code, message)
  return { kind = "network", message = message, curl_code = code }
end

-- Seconds to whole milliseconds for the cosocket timeouts, never 0 (which nginx reads
-- as "no timeout" in some places).
local function ms(seconds)
  return max(1, ceil(seconds * 1000))
end

--- nginx.new(settings): the settings the client resolved (connect_timeout, timeout,
-- max_body_size, insecure; keepalive_timeout and pool_size when given).
function nginx.new(settings)
  if type(ngx) ~= "table" or ngx.socket == nil then
    error("soracom.groups.new: the nginx transport runs only inside nginx (ngx_lua or OpenResty)", 3)
  end
  for _, name in ipairs { "ca_file", "ca_path", "proxy" } do
    if settings[name] ~= nil then
      error("soracom.groups.new: " .. name .. " is not supported by the nginx transport: "
        .. (name == "proxy" and "cosockets connect directly to the API"
          or "nginx verifies against the CAs of the lua_ssl_trusted_certificate directive")
        .. " (see lua/soracom/groups/transport/nginx.lua)", 3)
    end
  end
  local max_body = settings.max_body_size or DEFAULT_MAX_BODY
  max_body = max_body >= MAX_BODY_LIMIT and MAX_BODY_LIMIT or max(1, math.floor(max_body))
  return setmetatable({
    _connect_timeout = settings.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
    _timeout = settings.timeout or DEFAULT_TIMEOUT,
    _max_body = max_body,
    _verify = not settings.insecure,
    _keepalive_ms = ms(settings.keepalive_timeout or DEFAULT_KEEPALIVE_TIMEOUT),
    _pool_size = settings.pool_size or DEFAULT_POOL_SIZE,
    _closed = false,
    _flights = {}, -- the requests in flight: flight -> true (see close)
  }, Transport)
end

-- transport -> the header block of every request. Kept out of the transport table
-- because it holds the API key and token, which must not show when a client is dumped.
local heads = setmetatable({}, { __mode = "k" })

-- Names (lower case) of the headers the transport writes itself; a line from
-- set_headers with the same name replaces it, and "Name:" without a value removes it,
-- as with libcurl.
local OWN_HEADERS = { host = true, ["user-agent"] = true, ["content-type"] = true }
-- Framing is the transport's business: these are never taken from set_headers.
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

-- The header block of lines, and the names of the transport's own headers they
-- give; raises (at level 3) for a malformed line.
local function head_of(lines)
  if type(lines) ~= "table" then
    error("soracom.groups: set_headers expects a table of header lines", 3)
  end
  local out, given = {}, {}
  for i = 1, #lines do
    local line = lines[i]
    if type(line) ~= "string" then
      error("soracom.groups: header " .. i .. " is not a string", 3)
    end
    if find(line, "[\r\n]") then
      error("soracom.groups: header " .. i .. " contains a line break", 3)
    end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if name == nil then
      error("soracom.groups: header " .. i .. " is not \"Name: value\"", 3)
    end
    local key = lower(name)
    if not FRAMING[key] then
      if OWN_HEADERS[key] then given[key] = true end
      if value ~= "" then out[#out + 1] = name .. ": " .. value .. "\r\n" end
    end
  end
  return concat(out), given
end

--- set_headers(lines): "Name: value" strings sent with every later request.
function Transport:set_headers(lines)
  if self._closed then error("soracom.groups: the client is closed", 2) end
  heads[self], self._given = head_of(lines)
end

--- sleep(seconds): ngx.sleep, which yields to the worker's other requests.
function Transport.sleep(_, seconds)
  ngx.sleep(seconds)
end

--- close(): the requests in flight end at once with a "closed" error, whichever nginx
-- request (or timer) runs them, and their connections are closed (idle ones belong to
-- the worker's pool); later use raises, as with the curl session. Safe twice.
function Transport:close()
  self._closed = true
  local flights = self._flights
  self._flights = {}
  for flight in pairs(flights) do flight.wake:post(1) end
end

-- http(s)://host[:port][/path][?query] -> a table, or nil, err. IPv6 literals in
-- brackets; user info and fragments are not for this API and are refused/dropped.
local function parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if scheme == nil then
    return nil, network_error(CURLE.URL_MALFORMAT, "malformed URL: " .. url)
  end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return nil, network_error(CURLE.UNSUPPORTED_PROTOCOL, "unsupported URL scheme: " .. scheme)
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" then
    target = "/"
  elseif byte(target, 1) == 63 then -- "?"
    target = "/" .. target
  end
  local host, port, host_header
  if byte(authority, 1) == 91 then -- "[": an IPv6 literal
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
    host_header = host and "[" .. host .. "]"
  else
    host, port = authority:match("^([%w.%-_]+):?(%d*)$")
    host_header = host
  end
  if host == nil or host == "" then
    return nil, network_error(CURLE.URL_MALFORMAT, "malformed URL (host): " .. url)
  end
  local literal = byte(authority, 1) == 91 or host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
  local tls = scheme == "https"
  local default_port = tls and 443 or 80
  local number = port ~= "" and tonumber(port) or default_port
  if number < 1 or number > 65535 then
    return nil, network_error(CURLE.URL_MALFORMAT, "malformed URL (port): " .. url)
  end
  if number ~= default_port then host_header = host_header .. ":" .. number end
  return {
    tls = tls,
    host = host,
    port = number,
    -- SNI and the certificate's name check: the host name. An IP literal is sent no
    -- SNI (RFC 6066) and nginx can only check DNS names (X509_check_host), so for it
    -- only the chain is verified; see warn_ip_literal.
    sni = not literal and host or nil,
    host_header = host_header,
    target = target,
  }
end

-- The pool of a destination. Verified and unverified TLS connections never mix.
local function pool_name(u, verify)
  return format("soracom-groups:%s:%s:%d%s", u.tls and "https" or "http", u.host, u.port,
    u.tls and (verify and ":verified" or ":unverified") or "")
end

local function connect_code(err)
  if err == "timeout" then return CURLE.OPERATION_TIMEDOUT end
  if find(err, "resolve", 1, true) or find(err, "resolver", 1, true) then
    return CURLE.COULDNT_RESOLVE_HOST
  end
  return CURLE.COULDNT_CONNECT
end

local function timed_out(self, started)
  return network_error(CURLE.OPERATION_TIMEDOUT, format(
    "operation timed out after %d milliseconds (timeout %g s)",
    ms(ngx.now() - started), self._timeout))
end

-- An https URL with an IP address: nginx sends no SNI and cannot check that the
-- certificate names the address (it checks DNS names only), so only the chain is
-- verified. Said once per worker and address, in the error log.
local warned = {}
local function warn_ip_literal(u)
  local key = u.host .. ":" .. u.port
  if warned[key] then return end
  warned[key] = true
  ngx.log(ngx.WARN, "soracom-groups: https://", key, ": the certificate chain is verified, but ",
    "nginx cannot check that the certificate names an IP address; use a host name")
end

-- Opens (or takes from the pool) a connection; TLS handshake on a new one.
-- Returns sock, reused or nil, err.
local function connect(self, u, deadline, started)
  local remaining = deadline - ngx.now()
  if remaining <= 0 then return nil, timed_out(self, started) end
  local limit = ms(min(self._connect_timeout, remaining))
  local sock = ngx.socket.tcp()
  sock:settimeouts(limit, limit, limit)
  local pool = pool_name(u, self._verify)
  local ok, err = sock:connect(u.host, u.port, { pool = pool, pool_size = self._pool_size })
  if not ok then
    local code = connect_code(err)
    local message = format("failed to connect to %s port %d: %s", u.host, u.port, err)
    if code == CURLE.COULDNT_RESOLVE_HOST then
      message = message .. " (nginx resolves names with the resolver directive)"
    end
    return nil, network_error(code, message)
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if u.tls and not reused then
    if u.sni == nil and self._verify then warn_ip_literal(u) end
    local session, code
    session, err = sock:sslhandshake(false, u.sni, self._verify)
    if session and not sock:getreusedtimes() then
      -- ngx_lua 0.10.23 (Debian 12) can report success for a handshake whose
      -- verification failed: it logs the reason and closes the connection.
      session, err = nil, "certificate verification failed (the nginx error log says why)"
      code = CURLE.PEER_FAILED_VERIFICATION
    end
    if not session then
      sock:close()
      if err == "timeout" then
        code = CURLE.OPERATION_TIMEDOUT
      elseif code or find(err, "^%d+: ") or find(err, "host mismatch", 1, true) then
        code = CURLE.PEER_FAILED_VERIFICATION
        err = err .. "; nginx trusts the CAs of lua_ssl_trusted_certificate"
      else
        code = CURLE.SSL_CONNECT_ERROR
      end
      return nil, network_error(code, format("TLS handshake with %s port %d failed: %s",
        u.host, u.port, err))
    end
  end
  return sock, reused
end

-- A buffered reader over a socket that never waits past the request's deadline:
-- each read asks for whatever has arrived (receiveany), with the time left as its
-- timeout, because a cosocket's read timeout restarts whenever a byte arrives.
local Reader = {}
Reader.__index = Reader

local function new_reader(sock, deadline)
  return setmetatable({ sock = sock, deadline = deadline, buf = "", pos = 1, got = 0 }, Reader)
end

-- Reads more into the buffer: true, or nil, cosocket error ("timeout", "closed", ...).
function Reader:fill()
  local remaining = self.deadline - ngx.now()
  if remaining <= 0 then return nil, "timeout" end
  local limit = ms(remaining)
  self.sock:settimeouts(limit, limit, limit)
  local data, err = self.sock:receiveany(READ_CHUNK)
  if data == nil then return nil, err end
  self.got = self.got + #data
  if self.pos > #self.buf then
    self.buf, self.pos = data, 1
  else
    self.buf, self.pos = sub(self.buf, self.pos) .. data, 1
  end
  return true
end

-- One line without its CR LF, nil, and its length with them; or nil, err. A line
-- longer than `limit` (CR LF included) is "too large".
function Reader:line(limit)
  while true do
    local lf = find(self.buf, "\n", self.pos, true)
    if lf then
      local raw = lf - self.pos + 1
      if raw > limit then return nil, "too large" end
      local line = sub(self.buf, self.pos, lf - 1)
      self.pos = lf + 1
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      return line, nil, raw
    end
    if #self.buf - self.pos + 1 > limit then return nil, "too large" end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- Appends exactly n bytes to the table parts; true, or nil, err, bytes missing.
function Reader:take(n, parts)
  while n > 0 do
    local available = #self.buf - self.pos + 1
    if available > 0 then
      local count = min(available, n)
      parts[#parts + 1] = sub(self.buf, self.pos, self.pos + count - 1)
      self.pos = self.pos + count
      n = n - count
    else
      local ok, err = self:fill()
      if not ok then return nil, err, n end
    end
  end
  return true
end

-- Everything until the server closes; true, or nil, err. Stops past `cap` bytes.
function Reader:rest(parts, cap)
  local total = 0
  while true do
    if self.pos <= #self.buf then
      local piece = sub(self.buf, self.pos)
      self.pos = #self.buf + 1
      parts[#parts + 1] = piece
      total = total + #piece
      if total > cap then return nil, "too large" end
    end
    local ok, err = self:fill()
    if not ok then
      if err == "closed" then return true end
      return nil, err
    end
  end
end

function Reader:pending()
  return #self.buf - self.pos + 1
end

local function too_large(self)
  return network_error(CURLE.WRITE_ERROR, format(
    "the response body is larger than max_body_size (%.14g bytes)", self._max_body))
end

-- A read that failed: the error table. `phase` is "head" (status line and headers)
-- or "body"; `missing` the bytes a Content-Length still promised.
local function read_error(self, err, reader, phase, started, missing)
  if err == "timeout" then return timed_out(self, started) end
  -- The same messages as csrc/kept_headers.c gives for the curl transport.
  if err == "line too large" then
    if phase == "body" then
      return network_error(CURLE.RECV_ERROR, format("a trailer line is longer than %d bytes", TRAILER_LINE_MAX))
    end
    return network_error(CURLE.OUT_OF_MEMORY, format("a response header line is longer than %d bytes",
      HEADER_LINE_MAX))
  end
  if err == "fields too large" then
    if phase == "body" then
      return network_error(CURLE.RECV_ERROR, format("the response trailers are larger than %d bytes",
        TRAILER_BYTES_MAX))
    end
    return network_error(CURLE.RECV_ERROR, format("the response headers are larger than %d bytes",
      HEADER_BYTES_MAX))
  end
  if err == "too large" then -- a chunk-size line
    return network_error(CURLE.RECV_ERROR, "malformed chunked encoding")
  end
  -- libcurl's own words for lines it refuses
  if err == "no colon" then return network_error(CURLE.WEIRD_SERVER_REPLY, "Header without colon") end
  if err == "nul" then return network_error(CURLE.WEIRD_SERVER_REPLY, "Nul byte in header") end
  if err == "closed" then
    if reader.got == 0 then
      return network_error(CURLE.GOT_NOTHING, "empty reply from server")
    end
    if phase == "body" then
      return network_error(CURLE.PARTIAL_FILE, missing
        and format("transfer closed with %d bytes remaining to read", missing)
        or "transfer closed with outstanding read data remaining")
    end
    return network_error(CURLE.RECV_ERROR, "connection closed in the middle of the response headers")
  end
  return network_error(CURLE.RECV_ERROR, "recv failure: " .. tostring(err))
end

-- Reads header lines (or trailer lines) up to the empty one, as libcurl does: each
-- line within line_max, all of them within budget (the empty one too, unless
-- `trailers`: libcurl never shows it to the curl transport's count); an obsolete
-- folded line joined to the previous value with one space (ignored when there is
-- none); a line whose name holds a space ignored. Calls add(name, value) for each
-- field. Returns the budget left, or nil, err.
local function read_fields(reader, budget, line_max, add, trailers)
  local last -- the previous field's values; false: one not kept; nil: none yet
  while true do
    local line, err, raw = reader:line(line_max)
    if line == nil then
      if err == "too large" then err = "line too large" end
      return nil, err
    end
    if line == "" and trailers then return budget end
    budget = budget - raw
    if budget < 0 then return nil, "fields too large" end
    if line == "" then return budget end
    if find(line, "\0", 1, true) then return nil, "nul" end
    local first = byte(line, 1)
    if (first == 32 or first == 9) and last ~= nil then -- obsolete line folding
      if last then last[#last] = last[#last] .. " " .. line:match("^%s*(.-)%s*$") end
    else
      local name, value = line:match("^([^:]*):%s*(.-)%s*$")
      if name == nil then return nil, "no colon" end
      last = name ~= "" and not find(name, "%s") and add(lower(name), value) or false
    end
  end
end

-- Status line and headers. Returns status, headers (lower-case name -> the list of
-- its values, in order), minor version; or nil, err.
local function read_head(reader)
  local budget = HEADER_BYTES_MAX
  while true do
    local line, err, raw = reader:line(HEADER_LINE_MAX)
    if line == nil then
      if err == "too large" then err = "line too large" end
      return nil, err
    end
    budget = budget - raw
    if budget < 0 then return nil, "fields too large" end
    local major, minor, status = line:match("^HTTP/(%d)%.(%d) (%d%d%d)")
    if status == nil then return nil, "weird" end
    status = tonumber(status)
    local headers = {}
    budget, err = read_fields(reader, budget, HEADER_LINE_MAX, function(name, value)
      local values = headers[name]
      if values == nil then
        values = {}
        headers[name] = values
      end
      values[#values + 1] = value
      return values
    end)
    if budget == nil then return nil, err end
    -- 1xx (but 101) are interim: the real response follows.
    if status >= 200 or status == 101 then
      return status, headers, tonumber(major) * 10 + tonumber(minor)
    end
  end
end

-- A header's first value (libcurl's, for the ones the client reads), nil when empty.
local function first_value(headers, name)
  local values = headers[name]
  local value = values and values[1]
  if value == "" then return nil end
  return value
end

-- A header's first value as a non-negative integer: digits only, at most 15 of them
-- after any leading zeros ("0000000000000001" is 1), as sg_kept_integer in
-- csrc/kept_headers.c reads it; nil for anything else.
local function integer_value(headers, name)
  local value = first_value(headers, name)
  if value and not find(value, "%D") and #value:gsub("^0+", "") <= 15 then
    return tonumber(value)
  end
  return nil
end

-- All of a header's values, as one comma-separated list (RFC 9110 5.3).
local function joined(headers, name)
  local values = headers[name]
  return values and concat(values, ", ")
end

-- Reads the body as framed by the headers. Returns body, reusable or nil, err.
local function read_body(self, reader, method, status, headers, started)
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then
    return "", true
  end
  local parts, cap = {}, self._max_body
  local encoding = joined(headers, "transfer-encoding")
  if encoding then
    -- Only chunked is read; a compressed transfer coding is refused, not misread.
    if not lower(encoding):match("^%s*chunked%s*$") then
      return nil, network_error(CURLE.BAD_CONTENT_ENCODING, "unsupported transfer encoding: " .. encoding)
    end
    local total = 0
    while true do
      local line, err = reader:line(1024)
      if line == nil then return nil, read_error(self, err, reader, "body", started) end
      local size = line:match("^%s*(%x+)")
      if size == nil then
        return nil, network_error(CURLE.RECV_ERROR, "malformed chunked encoding")
      end
      size = tonumber(size, 16)
      if size == 0 then break end
      total = total + size
      if total > cap then return nil, too_large(self) end
      local ok, missing
      ok, err, missing = reader:take(size, parts)
      if not ok then return nil, read_error(self, err, reader, "body", started, missing) end
      line, err = reader:line(2)
      if line == nil then return nil, read_error(self, err, reader, "body", started) end
      if line ~= "" then
        return nil, network_error(CURLE.RECV_ERROR, "malformed chunked encoding")
      end
    end
    local left, err = read_fields(reader, TRAILER_BYTES_MAX, TRAILER_LINE_MAX,
      function() return false end, true) -- trailers: skipped
    if left == nil then
      if err == "no colon" or err == "nul" then
        return nil, network_error(CURLE.RECV_ERROR, "malformed chunked trailer")
      end
      return nil, read_error(self, err, reader, "body", started)
    end
    -- A Content-Length beside chunked is a smuggling smell: read, but do not reuse.
    return concat(parts), headers["content-length"] == nil
  end
  local length = joined(headers, "content-length")
  if length ~= nil then
    -- Repeated identical values (joined "5, 5") are allowed, different ones are not.
    local n
    for value in (length .. ","):gmatch("%s*([^,]*),") do
      local this = value:match("^%d+$") and tonumber(value)
      if this == nil or (n and n ~= this) then n = nil break end
      n = this
    end
    if n == nil then
      return nil, network_error(CURLE.WEIRD_SERVER_REPLY, "invalid Content-Length: " .. length)
    end
    if n > cap then return nil, too_large(self) end
    local ok, err, missing = reader:take(n, parts)
    if not ok then return nil, read_error(self, err, reader, "body", started, missing) end
    return concat(parts), true
  end
  local ok, err = reader:rest(parts, cap)
  if not ok then
    if err == "too large" then return nil, too_large(self) end
    return nil, read_error(self, err, reader, "body", started)
  end
  return concat(parts), false
end

-- May the connection carry another request after this response?
local function keep_alive(headers, version)
  local connection = lower(joined(headers, "connection") or "")
  if find(connection, "close", 1, true) then return false end
  if version >= 11 then return true end
  return find(connection, "keep-alive", 1, true) ~= nil
end

-- The request's bytes, as a table for sock:send.
-- head and given: the header block and its own-header names (set_headers', or a
-- request's own).
local function request_bytes(head, given, method, u, body)
  local out = { method, " ", u.target, " HTTP/1.1\r\n" }
  if not given.host then out[#out + 1] = "Host: " .. u.host_header .. "\r\n" end
  if not given["user-agent"] then out[#out + 1] = "User-Agent: " .. USER_AGENT .. "\r\n" end
  out[#out + 1] = head
  if body ~= nil then
    if not given["content-type"] then out[#out + 1] = "Content-Type: application/json\r\n" end
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n\r\n"
    out[#out + 1] = body
  else
    out[#out + 1] = "\r\n"
  end
  return out
end

-- One exchange on one connection. Returns {status, headers, body}; or nil, err, stale
-- where stale means a pooled connection failed before any byte of a response came
-- back (the server had closed it while idle): worth sending again on a new one.
local function exchange(self, u, method, bytes, deadline, started)
  local sock, reused = connect(self, u, deadline, started)
  if not sock then return nil, reused end
  local remaining = deadline - ngx.now()
  if remaining <= 0 then
    sock:close()
    return nil, timed_out(self, started)
  end
  local limit = ms(remaining)
  sock:settimeouts(limit, limit, limit)
  local sent, err = sock:send(bytes)
  if not sent then
    sock:close()
    if err == "timeout" then return nil, timed_out(self, started) end
    return nil, network_error(CURLE.SEND_ERROR, "send failure: " .. tostring(err)), reused
  end
  local reader = new_reader(sock, deadline)
  local status, headers, version = read_head(reader)
  if status == nil then
    sock:close()
    err = headers
    if err == "weird" then
      return nil, network_error(CURLE.WEIRD_SERVER_REPLY, "weird server reply (not HTTP/1.x)")
    end
    return nil, read_error(self, err, reader, "head", started), reused and reader.got == 0
      and err ~= "timeout"
  end
  if status == 101 then
    -- A switch of protocols nobody asked for: the connection no longer speaks HTTP.
    -- libcurl, too, sees no response in it.
    sock:close()
    return nil, network_error(CURLE.GOT_NOTHING, "empty reply from server (101 Switching Protocols)")
  end
  local body, reusable = read_body(self, reader, method, status, headers, started)
  if body == nil then
    sock:close()
    return nil, reusable
  end
  if reusable and reader:pending() == 0 and keep_alive(headers, version) then
    sock:setkeepalive(self._keepalive_ms, self._pool_size)
  else
    sock:close()
  end
  return { status = status, headers = headers, body = body }
end

-- The answer's X-Soracom-Ratelimit-* headers as {limit, remaining, refresh} (fields
-- whose header holds digits only, as the curl session reads them), or nil.
local function rate_limit(headers)
  local limit = integer_value(headers, "x-soracom-ratelimit-limit")
  local remaining = integer_value(headers, "x-soracom-ratelimit-remaining")
  local refresh = integer_value(headers, "x-soracom-ratelimit-seconds-before-refresh")
  if limit or remaining or refresh then
    return { limit = limit, remaining = remaining, refresh = refresh }
  end
end

-- The exchange of a request, on a pooled connection or new ones: {status, headers,
-- body}, or nil, err.
local function send(self, u, method, bytes)
  ngx.update_time()
  local started = ngx.now()
  local deadline = started + self._timeout
  -- Stale pooled connections are replaced, at most as many as the pool holds.
  local response, err, stale
  for _ = 0, self._pool_size do
    response, err, stale = exchange(self, u, method, bytes, deadline, started)
    if response or not stale then break end
  end
  return response, err
end

local function closed_in_flight()
  return nil, { kind = "closed", message = "the client was closed while the request was in flight" }
end

local semaphore -- ngx.semaphore, once a request is made
-- Semaphores of ended requests, with nothing left to take: the next ones' (a few).
local spare, SPARE_MAX = {}, 64

-- The light thread of a request in flight: the exchange, then the caller woken.
local function fly(self, flight, u, method, bytes)
  flight.ok, flight.response, flight.err = pcall(send, self, u, method, bytes)
  flight.done = true
  flight.wake:post(1)
end

-- Sends a request so that close() can end it at once, from any nginx request: the
-- exchange runs in a light thread of its own while the caller waits on a semaphore,
-- which the exchange's end or close() posts. A cosocket cannot be closed from another
-- nginx request ("bad request"), nor from another light thread while it reads ("socket
-- busy reading"), but its light thread can be killed by the one that spawned it, which
-- closes its connection: so on close() the caller kills it and returns the closed error.
-- An answer that comes after close() is discarded. Returns {status, headers, body}, or
-- nil, err; raises what the exchange raised.
local function in_flight(self, u, method, bytes)
  semaphore = semaphore or require "ngx.semaphore"
  local wake = spare[#spare]
  if wake then spare[#spare] = nil else wake = semaphore.new(0) end
  local flight = { wake = wake }
  local helper = ngx.thread.spawn(fly, self, flight, u, method, bytes)
  if not flight.done then -- (it yielded)
    self._flights[flight] = true
    wake:wait(self._timeout + 1) -- (its own deadline ends it before)
    self._flights[flight] = nil
  end
  if not flight.done then -- closed, or its deadline long past
    ngx.thread.kill(helper)
    if self._closed then return closed_in_flight() end
    return nil, network_error(CURLE.OPERATION_TIMEDOUT, format("operation timed out (timeout %g s)", self._timeout))
  end
  ngx.thread.wait(helper) -- (ended: collected at once)
  if wake:count() == 0 and #spare < SPARE_MAX then spare[#spare + 1] = wake end
  if not flight.ok then error(flight.response, 0) end
  if self._closed then return closed_in_flight() end
  return flight.response, flight.err
end

--- perform(method, url, body, paginated, lines) -> value, next_key, status, limits | nil, err
-- lines: header lines for this request alone, instead of set_headers' (optional).
function Transport:perform(method, url, body, paginated, lines)
  if self._closed then error("soracom.groups: the client is closed", 2) end
  if heads[self] == nil then error("soracom.groups: set_headers was not called", 2) end
  local phase = ngx.get_phase()
  if not phases.cosockets[phase] then
    error("soracom.groups: the nginx transport needs cosockets, which nginx does not offer in the "
      .. phase .. " phase (use transport = \"curl\" there, or ngx.timer.at)", 2)
  end
  local u, err = parse_url(url)
  if u == nil then return nil, err end
  local head, given = heads[self], self._given
  if lines then head, given = head_of(lines) end
  local bytes = request_bytes(head, given, method, u, body)
  local response
  response, err = in_flight(self, u, method, bytes)
  if response == nil then return nil, err end
  local headers = response.headers
  local next_key, link
  if paginated then
    next_key = first_value(headers, "x-soracom-next-key")
    link = joined(headers, "link")
  end
  local value, key_or_err, status = decode_response(response.status, response.body, next_key, link,
    first_value(headers, "retry-after"),
    first_value(headers, "x-soracom-ratelimit-seconds-before-refresh"))
  -- Returned with this answer, not kept: other light threads share the transport.
  local limits = rate_limit(headers)
  if value == nil then
    key_or_err.rate_limit = limits
    return nil, key_or_err
  end
  return value, key_or_err, status, limits
end

Transport.event = nginx_tasks.event

-- Waits inside nginx are nginx's: an application loop's wait does not apply.
function Transport.set_waiter() end

function Transport.spawn(_, job)
  return nginx_tasks.spawn(job)
end

function Transport.run_tasks(_, source, concurrency)
  nginx_tasks.run(source, concurrency)
end

function Transport.start_tasks(_, source, concurrency)
  return nginx_tasks.start(source, concurrency)
end

-- Light threads are nginx's: a sleep option given there is the caller's to choose.
function Transport.in_task()
  return false
end

function Transport:__tostring()
  return "soracom.groups.nginx_transport (" .. (self._closed and "closed" or "open") .. ")"
end

nginx.Transport = Transport
nginx.DEFAULT_CONNECT_TIMEOUT, nginx.DEFAULT_TIMEOUT = DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT
nginx._parse_url = parse_url -- for the specs

return nginx
