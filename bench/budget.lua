-- The rate budget at the limit (issue 22): client:map over get_group against the fake
-- limiting GET /v1/groups/{group_id}, in the cases where a budget is hardest to keep.
--
--   lua5.4 bench/budget.lua [--report]      (or luajit; about two minutes)
--
-- Run from the repository root, after scripts/build 5.4 jit. Starts its own fake
-- (spec/support/fake_server.lua). Each row runs in a child process of this script
-- (the same Lua), so every row has a fresh client that does not know the limit yet,
-- and a row that never ends is killed (`timeout`) and reported "timed out" with what
-- the fake counted. Meanwhile this process polls the fake's rate-limit windows
-- (GET /_fake/ratelimit) to count the answers 429 of each window.
--
-- Rows (the limit is per operator and API, here the one API GET /v1/groups/{group_id};
-- every call a get_group of a distinct seeded group, the client otherwise at its defaults):
--   1   600 calls, 100 per 2 s, concurrency 32, 50 ms latency.
--       Goal: <= 11 s (1.10x the ideal), 0 answers 429, every call ok.
--   2   the same with up to 100 ms of latency jitter.
--       Goal: <= 11.5 s (1.15x), at most 1 answer 429 per window, every call ok.
--   3   600 calls, 100 per 2 s, concurrency 128, no latency (more tasks than the limit, and
--       the client does not know the limit when they start). Goal: at most 1 answer 429.
--   4a  600 calls, 100 per 2 s, concurrency 96, 20 ms latency and up to 0.5 s jitter.
--   4b  the same at concurrency 256. Goal: at most 1 answer 429 per window, every call ok.
--   5   300 calls, 10 per 2 s, concurrency 100, rate_limit_max_delay = 15. Goal: no call
--       fails with err.kind "rate_limit" (the failures are counted by kind).
--   6   one answer 429 with X-Soracom-Ratelimit-Limit: 0 (the fake's rate_limit with
--       limit 0: every request is refused and says so), then the fake lifts it (100 per
--       2 s) and 10 calls run at concurrency 10 (retries = 0, rate_limit_max_delay = 10,
--       which bounds the row). Goal: the calls resume once Seconds-Before-Refresh has
--       passed: every call ok, the first within Seconds-Before-Refresh + 1 s of the 429.
--       "locked" when no request at all reached the fake after the lift.
--
-- The ideal time: the fake's windows are fixed, each starting with the first request after
-- the previous one ended. For N calls at L per W-second window, the first call starting a
-- window, call k (from 0) can start no earlier than floor(k / L) windows after the first,
-- so the last one at floor((N - 1) / L) * W seconds: 600 at 100 per 2 s -> 10 s, 300 at 10
-- per 2 s -> 58 s. (The wall time also holds the last answer's latency, 50 ms in row 1.)
-- The ratio is wall time / ideal time: 1.00 is the limit's full throughput. In row 6 the
-- ideal is Seconds-Before-Refresh of the 429 and the wall time the time from that 429 to
-- the first success.
--
-- Answers 429 are the fake's count for the API (GET /_fake/stats, exact). Per window they
-- come from polling its open windows (each window's status_429 just before it ends); a 429
-- answered in the last few milliseconds of a window may escape the polls: the line then says
-- how many were not attributed to a window.
--
-- Prints one line per row, then a table; exits 1 when a goal is missed, unless --report.

local version = _VERSION:match("%d+%.%d+") or "5.1"
if rawget(_G, "jit") then version = "jit" end
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath

local core = require "soracom.groups.core"
local cjson = require "cjson"
local now = core.now

local API = "GET /v1/groups/{group_id}"
local API_KEY, TOKEN = "test-api-key", "test-token"

local ROWS = {
  { id = "1", calls = 600, limit = 100, window = 2, concurrency = 32, latency = 0.05, jitter = 0,
    goal = { ratio = 1.10, total_429 = 0, all_ok = true }, goal_text = "<= 11.0 s, 0 x 429" },
  { id = "2", calls = 600, limit = 100, window = 2, concurrency = 32, latency = 0.05, jitter = 0.1,
    goal = { ratio = 1.15, per_window_429 = 1, all_ok = true }, goal_text = "<= 11.5 s, <= 1 x 429/window" },
  { id = "3", calls = 600, limit = 100, window = 2, concurrency = 128, latency = 0, jitter = 0,
    goal = { total_429 = 1 }, goal_text = "<= 1 x 429" },
  { id = "4a", calls = 600, limit = 100, window = 2, concurrency = 96, latency = 0.02, jitter = 0.5,
    goal = { per_window_429 = 1, all_ok = true }, goal_text = "<= 1 x 429/window" },
  { id = "4b", calls = 600, limit = 100, window = 2, concurrency = 256, latency = 0.02, jitter = 0.5,
    goal = { per_window_429 = 1, all_ok = true }, goal_text = "<= 1 x 429/window" },
  { id = "5", calls = 300, limit = 10, window = 2, concurrency = 100, latency = 0, jitter = 0,
    max_delay = 15, goal = { rate_limit_failures = 0 }, goal_text = "0 fail rate_limit" },
  { id = "6", lift = true, calls = 10, limit = 100, window = 2, concurrency = 10, latency = 0, jitter = 0,
    max_delay = 10, retries = 0, goal = { resumes = 1, all_ok = true },
    goal_text = "resumes <= refresh + 1 s" },
}

local function ideal_seconds(row)
  return math.floor((row.calls - 1) / row.limit) * row.window
end

-- A call that has not started this long after the row began is not started at all
-- (reported "timed out"); the child is killed KILL_AFTER seconds later still.
local function soft_deadline(row)
  if row.lift then return 20 end
  return 1.5 * ideal_seconds(row) + 5
end
local KILL_AFTER = 15

local function find_row(id)
  for _, row in ipairs(ROWS) do
    if row.id == id then return row end
  end
  error("no row " .. tostring(id))
end

local function read_lines(path)
  local list = {}
  for line in io.lines(path) do list[#list + 1] = line end
  return list
end

-- The kind of a failed call, as counted: "rate_limit", "http 429", "deadline", ...
local function kind_of(err)
  if type(err) ~= "table" then return tostring(err) end
  local kind = tostring(err.kind)
  if err.kind == "http" and err.status then kind = kind .. " " .. err.status end
  return kind
end

---------------------------------------------------------------------------------------
-- The child: one row, one fresh client. Prints "RESULT <json>".

local function child(row_id, base_url, ids_file)
  local groups = require "soracom.groups"
  local row = find_row(row_id)
  local ids = read_lines(ids_file)
  local started = now()
  local deadline = started + soft_deadline(row)
  local client = assert(groups.new { endpoint = base_url .. "/v1", api_key = API_KEY, token = TOKEN,
    transport = "curl", rate_limit_max_delay = row.max_delay, retries = row.retries })
  local result = { kinds = {}, examples = {}, not_started = 0 }

  if row.lift then
    -- The one answer with limit 0, then the lift (a control call: never delayed nor limited).
    local _, err = client:get_group(ids[1])
    local refused_at = now()
    result.first_status = type(err) == "table" and err.status or 200
    result.refresh = type(err) == "table" and err.retry_after or nil
    local http = require "socket.http"
    local function control(method, path, body)
      local ok, status = http.request { url = base_url .. path, method = method,
        headers = body and { ["Content-Type"] = "application/json", ["Content-Length"] = tostring(#body) },
        source = body and require("ltn12").source.string(body) }
      assert(ok and status >= 200 and status < 300, "control " .. method .. " " .. path .. ": " .. tostring(status))
    end
    control("POST", "/_fake/settings", cjson.encode { rate_limit = { limit = row.limit, window = row.window } })
    control("DELETE", "/_fake/stats")
    result.lift_after = now() - refused_at
    started = refused_at
  end

  local first_ok
  local _, summary = client:map(ids, function(id)
    if now() > deadline then return nil, { kind = "deadline" } end
    return client:get_group(id)
  end, { concurrency = row.concurrency, keep_results = false, on_result = function(_, _, err)
    if err == nil then
      first_ok = first_ok or now()
      return
    end
    local kind = kind_of(err)
    if kind == "deadline" then result.not_started = result.not_started + 1 end
    result.kinds[kind] = (result.kinds[kind] or 0) + 1
    result.examples[kind] = result.examples[kind] or tostring(err)
  end })
  result.ok = summary.ok
  result.failed = summary.failed
  result.seconds = summary.seconds
  if row.lift then
    result.seconds = first_ok and first_ok - started or nil
    result.map_seconds = summary.seconds
  end
  client:close()
  io.write("RESULT ", cjson.encode(result), "\n")
end

if arg[1] == "--child" then
  child(arg[2], arg[3], arg[4])
  os.exit(0)
end

---------------------------------------------------------------------------------------
-- The parent: the fake, the rows, the windows, the table.

local report_only, only = false, nil
for _, a in ipairs(arg) do
  if a == "--report" then
    report_only = true
  elseif a:match("^%-%-only=") then
    only = {}
    for id in a:sub(8):gmatch("[^,]+") do only[id] = true end
  else
    io.stderr:write("usage: bench/budget.lua [--report] [--only=ROW,...]\n")
    os.exit(2)
  end
end

local fake = require "spec.support.fake_server"
local command = require "spec.support.command"
local srv = fake.start()
local lua = arg[-1] or "lua5.4"
local tmp = os.tmpname()

local shell_quote, slurp = command.quote, command.slurp

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Polls the API's open windows: each seen window's status_429 (keyed by when it ends).
local Windows = {}
Windows.__index = Windows

local function new_windows()
  return setmetatable({ list = {} }, Windows)
end

function Windows:poll()
  local at = now()
  local ok, open = pcall(srv.rate_limit_windows, srv)
  if not ok then return at + 0.05 end
  local next_poll = at + 0.1
  for _, w in ipairs(open) do
    if w.api == API then
      local ends = at + w.resets_in
      local known
      for _, k in ipairs(self.list) do
        if math.abs(k.ends - ends) < 0.25 then known = k end
      end
      if not known then
        known = { ends = ends, status_429 = 0, used = 0, limit = w.limit }
        self.list[#self.list + 1] = known
      end
      known.status_429 = math.max(known.status_429, w.status_429)
      known.used = math.max(known.used, w.used)
      -- One more look just before it ends, to catch its last 429s.
      if ends - 0.03 > at + 0.01 then next_poll = math.min(next_poll, ends - 0.03) end
    end
  end
  return next_poll
end

-- The 429s of each window seen, oldest first, their sum and maximum, and the requests
-- each window admitted.
function Windows:counts()
  local list, used, sum, max = {}, {}, 0, 0
  table.sort(self.list, function(a, b) return a.ends < b.ends end)
  for i, w in ipairs(self.list) do
    list[i], used[i] = w.status_429, w.used
    sum = sum + w.status_429
    max = math.max(max, w.status_429)
  end
  return list, sum, max, used
end

local function api_stats()
  local by_api = srv:stats().by_api[API] or {}
  return by_api.requests or 0, by_api.status_429 or 0
end

local function run_row(row)
  srv:reset()
  local settings = { record_requests = false,
    rate_limit = { limit = row.lift and 0 or row.limit, window = row.window } }
  if row.latency > 0 then settings.latency = row.latency end
  if row.jitter > 0 then settings.latency_jitter = row.jitter end
  srv:settings(settings)
  local ids = srv:seed_groups(row.calls)
  local ids_file = tmp .. ".ids"
  local f = assert(io.open(ids_file, "wb"))
  f:write(table.concat(ids, "\n"), "\n")
  f:close()
  srv:clear_stats()

  local out, err_file, rc_file = tmp .. ".out", tmp .. ".err", tmp .. ".rc"
  os.remove(rc_file)
  local hard = math.ceil(soft_deadline(row) + KILL_AFTER)
  local line = string.format("( timeout -k 2 %d %s bench/budget.lua --child %s %s %s > %s 2> %s; echo $? > %s ) &",
    hard, shell_quote(lua), shell_quote(row.id), shell_quote(srv.url), shell_quote(ids_file),
    shell_quote(out), shell_quote(err_file), shell_quote(rc_file))
  local started = now()
  os.execute(line)
  local windows = new_windows()
  while not file_exists(rc_file) do
    local next_poll = windows:poll()
    local pause = math.max(0.01, math.min(next_poll, now() + 0.1) - now())
    core.sleep(pause)
  end
  core.sleep(0.05) -- the rc file is written: give the shell time to finish it
  windows:poll()
  local elapsed = now() - started
  local rc = tonumber(slurp(rc_file):match("%d+"))
  local requests, total_429 = api_stats()
  local text = slurp(out)
  local json = text:match("RESULT ([^\n]+)")
  local result = json and cjson.decode(json) or {}
  result.rc, result.elapsed = rc, elapsed
  result.killed = rc == 124 or rc == 137
  result.crashed = not json and not result.killed
  result.stderr = slurp(err_file)
  result.requests, result.total_429 = requests, total_429
  result.per_window, result.attributed, result.max_429, result.admitted = windows:counts()
  os.remove(out); os.remove(err_file); os.remove(rc_file); os.remove(ids_file)
  return result
end

local function fmt(value, pattern)
  if value == nil then return "-" end
  return string.format(pattern, value)
end

local function kinds_text(kinds)
  local names = {}
  for name in pairs(kinds or {}) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = string.format("%d %s", kinds[name], name) end
  return #parts > 0 and table.concat(parts, ", ") or "none"
end

-- Checks a row's goal; returns passed, and the figures shown.
local function judge(row, r)
  local shown = {}
  local ideal = ideal_seconds(row)
  if row.lift then ideal = r.refresh end
  shown.wall = r.seconds
  shown.ideal = ideal
  shown.ratio = r.seconds and ideal and ideal > 0 and r.seconds / ideal or nil
  shown.rate_limit = (r.kinds or {}).rate_limit or 0
  shown.other = (r.failed or 0) - shown.rate_limit
  shown.unattributed = r.total_429 - r.attributed
  local status = "ok"
  if r.killed then
    status = "timed out (killed)"
  elseif r.crashed then
    status = "crashed (exit " .. tostring(r.rc) .. ")"
  elseif (r.not_started or 0) > 0 then
    status = "timed out (" .. r.not_started .. " not started)"
  elseif row.lift and r.requests == 0 then
    status = "locked"
  end
  local g, pass = row.goal, status == "ok"
  if pass and g.ratio and not (shown.ratio and shown.ratio <= g.ratio) then pass = false end
  if g.total_429 and r.total_429 > g.total_429 then pass = false end
  -- Per window: a 429 not attributed to a window might belong to the worst one.
  if g.per_window_429 and r.max_429 + shown.unattributed > g.per_window_429 then pass = false end
  if g.all_ok and r.ok ~= row.calls then pass = false end
  if g.rate_limit_failures and shown.rate_limit > g.rate_limit_failures then pass = false end
  if g.resumes and not (r.seconds and r.refresh and r.seconds <= r.refresh + g.resumes) then pass = false end
  shown.status = status
  return pass, shown
end

local lines = {}
local failed = false
print(string.format("budget: %s, the fake at %s; %s per row, each a fresh client (a child process)",
  (lua:match("[^/]*$")), srv.url, API))
local selected = {}
for _, row in ipairs(ROWS) do
  if not only or only[row.id] then selected[#selected + 1] = row end
end
for _, row in ipairs(selected) do
  local r = run_row(row)
  local pass, s = judge(row, r)
  if not pass then failed = true end
  local windows = #r.per_window > 0 and table.concat(r.per_window, " ") or "-"
  local line
  if row.lift then
    line = string.format("row %-2s limit 0 (one answer %s, Seconds-Before-Refresh %s), lifted to %d per %g s after "
      .. "%s; %d calls at %d: %s; %d requests after the lift, first success %s after the 429 "
      .. "(ratio %s); %d ok, failures: %s; %s",
      row.id, fmt(r.first_status, "%d"), fmt(r.refresh, "%d s"), row.limit, row.window, fmt(r.lift_after, "%.3f s"),
      row.calls, row.concurrency, s.status, r.requests, fmt(s.wall, "%.2f s"), fmt(s.ratio, "%.2f"),
      r.ok or 0, kinds_text(r.kinds), pass and "PASS" or "FAIL")
  else
    line = string.format("row %-2s %d calls, %d per %g s, concurrency %d, latency %g ms + jitter %g ms: %s in %s "
      .. "(ideal %.1f s, ratio %s); %d requests, %d answers 429 (per window: %s; max %d%s); %d ok, failures: %s; %s",
      row.id, row.calls, row.limit, row.window, row.concurrency, row.latency * 1000, row.jitter * 1000,
      s.status, fmt(s.wall, "%.2f s"), s.ideal, fmt(s.ratio, "%.3f"), r.requests, r.total_429, windows,
      r.max_429, s.unattributed > 0 and (", " .. s.unattributed .. " not attributed") or "",
      r.ok or 0, kinds_text(r.kinds), pass and "PASS" or "FAIL")
  end
  print(line)
  if not row.lift and #r.admitted > 0 then
    print("       admitted per window: " .. table.concat(r.admitted, " "))
  end
  for kind, example in pairs(r.examples or {}) do
    print(string.format("       e.g. %s: %s", kind, example))
  end
  if r.crashed or r.killed then
    local tail = r.stderr:sub(-400)
    if tail ~= "" then print("       stderr: " .. tail:gsub("\n", "\n               ")) end
  end
  lines[#lines + 1] = { row = row, r = r, s = s, pass = pass }
end
srv:stop()
os.remove(tmp)

print("")
print("| row | calls | limit | conc. | latency + jitter | wall s | ideal s | ratio | requests | 429 | 429 max/window "
  .. "| rate_limit fails | other fails | goal | |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for _, l in ipairs(lines) do
  local row, r, s = l.row, l.r, l.s
  local wall = fmt(s.wall, "%.2f")
  if s.status ~= "ok" then wall = s.status .. (s.wall and " " .. wall or "") end
  local per_window = tostring(r.max_429) .. (s.unattributed > 0 and " (+" .. s.unattributed .. "?)" or "")
  if row.lift then per_window = "-" end
  print(string.format("| %s | %d | %s per %g s | %d | %g + %g ms | %s | %s | %s | %d | %d | %s | %d | %d | %s | %s |",
    row.id, row.calls, row.lift and ("0, then " .. row.limit) or tostring(row.limit), row.window,
    row.concurrency, row.latency * 1000, row.jitter * 1000, wall, fmt(s.ideal, "%.1f"),
    fmt(s.ratio, "%.3f"), r.requests, r.total_429, per_window, s.rate_limit, s.other, row.goal_text,
    l.pass and "PASS" or "FAIL"))
end
print("")
print("(row 6: requests = sent after the lift; wall = from the 429 to the first success; ideal = its "
  .. "Seconds-Before-Refresh)")
if failed and not report_only then os.exit(1) end
os.exit(0)
