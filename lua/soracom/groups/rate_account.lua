--- The account of one API's rate-limit window: the part of the budget (rate.lua) that
-- processes may share. Its functions change an account, a table of numbers and
-- booleans (ACCOUNT_FIELDS), and take only numbers, booleans and tables of them, so
-- that the same code can run here, under a shared dict's lock (shared.lua), or inside
-- Redis as a script (redis_shared.lua sends this file's source): keep it plain Lua 5.1,
-- with no require and no global, whatever Lua runs the rest.

local account_changes = {}

-- While a probe's answer is awaited, the others ask again this often (seconds).
local RECHECK = 0.05

-- A probe, or requests carried into a window, whose answers have not come this long
-- are taken for lost (their nginx request was aborted, their worker died): the
-- account goes on without them.
local LOST_AFTER = 30

-- Limits beyond these are no limits a server means: taken for a lie.
local ABSURD_LIMIT = 1e7
local LONGEST_WINDOW = 24 * 3600

-- Waits end this much after the time computed, so that the window has surely turned.
local MARGIN = 0.01

-- An account's fields, all numbers or booleans so that a shared store can write them
-- as text: gen (the window generation), window_end, prev_end (the end of the window
-- before), limit, window (its length: the most seconds-before-refresh seen), longest
-- (the most seen in this window, the next one's length), used, others, seen (what
-- this window's answers showed of the others), opened_count (the count of the answer
-- that first told the limit), in_flight (admitted in this window, unanswered), carried (of the window
-- before, unanswered), carried_at, provisional (the window's end is assumed, not yet
-- told), unlimited (answers carry no limit headers),
-- paused_until, probe (a probe must go before the others), probe_at (one is out).
local ACCOUNT_FIELDS = { "gen", "window_end", "prev_end", "limit", "window", "longest", "used", "others", "seen",
  "opened_count", "in_flight",
  "carried", "carried_at", "provisional", "unlimited", "paused_until", "probe", "probe_at" }

account_changes.ACCOUNT_FIELDS = ACCOUNT_FIELDS

---------------------------------------------------------------------------------------
-- The account.

local function max0(n) return n > 0 and n or 0 end

-- Moves the account to the window `at` falls in; requests still in flight from the
-- window just ended are counted in the new one until their answers say where they
-- landed.
local function roll(account, at)
  local ends = account.window_end
  if ends == nil or at < ends then return end
  local passed = math.floor((at - ends) / account.window) + 1
  account.prev_end = ends + (passed - 1) * account.window
  account.window_end = ends + passed * account.window
  account.gen = account.gen + passed
  account.carried = passed == 1 and account.in_flight or 0
  account.carried_at = at
  account.in_flight = 0
  account.used = account.carried
  -- The operator's other clients are assumed to go on as they went in the window just
  -- ended (what its answers showed of them), until this one's first answer tells.
  account.others, account.seen = passed == 1 and account.seen or 0, 0
  -- A window's length is what its answers showed, when they showed any: a server that
  -- shortens its window is followed.
  account.window, account.longest = math.max(1, account.longest or account.window), nil
  -- A server may start the next window only with the next request: the first answer
  -- of this one tells its end.
  account.provisional = true
end

local function drop_lost(account, at)
  if account.probe_at and at >= account.probe_at + LOST_AFTER then account.probe_at = nil end
  if (account.carried or 0) > 0 and at >= account.carried_at + LOST_AFTER then
    account.used = max0(account.used - account.carried)
    account.carried = 0
  end
end

-- What an account holds for a request with `ahead` others queued before it here:
-- "go" (with whether it is a probe), or "wait" and the seconds until it may go.
local function state(account, at, ahead)
  -- (the calls only where they may have something to do)
  if account.probe_at or account.carried then drop_lost(account, at) end
  if account.window_end then roll(account, at) end
  if account.paused_until then
    if at < account.paused_until then
      -- The head of the queue goes first, as the probe; the others after it, a
      -- window's limit at a time when the limit is known.
      local windows = account.limit and math.floor(ahead / account.limit) or 0
      return "wait", account.paused_until - at + windows * (account.window or 0) + (ahead > 0 and RECHECK or 0)
    end
    account.paused_until = nil
    account.probe = true
  end
  if account.unlimited then return "go" end
  if account.probe or account.limit == nil then
    if account.probe_at or ahead > 0 then return "wait", RECHECK end
    return "go", true
  end
  local left = account.limit - account.used - account.others
  if ahead < left then return "go" end
  -- The ones ahead take what is left, then `limit` a window.
  local windows = math.floor((ahead - max0(left)) / account.limit)
  return "wait", account.window_end + windows * account.window - at + MARGIN
end

-- Tickets are only read: the ones of a generation that are no probe are one table.
local plain_tickets = setmetatable({}, { __mode = "v" })

local function admit(account, at, ahead)
  local verdict, detail = state(account, at, ahead)
  if verdict == "wait" then return nil, detail end
  local gen = account.gen or 0
  account.gen = gen
  if detail then account.probe_at = at end
  if not account.unlimited and account.limit then
    account.used = (account.used or 0) + 1
  end
  account.in_flight = (account.in_flight or 0) + 1
  if detail then return { gen = gen, probe = true } end
  local ticket = plain_tickets[gen]
  if ticket == nil then
    ticket = { gen = gen }
    plain_tickets[gen] = ticket
  end
  return ticket
end

local function projected(account, at, ahead)
  local verdict, seconds = state(account, at, ahead)
  return verdict == "wait" and seconds or 0
end

-- The first answer with limits: the window it tells, what the server counted in it
-- and the requests still in flight, which may land in it.
local function open(account, at, ends, limits)
  account.gen = (account.gen or 0) + 1
  account.window_end, account.prev_end, account.provisional = ends, nil, nil
  account.window = math.max(1, math.ceil(limits.refresh))
  -- Requests sent before a limit was known are answered as the window before's: their
  -- answers then free what they hold here.
  account.carried, account.carried_at = account.in_flight or 0, at
  account.in_flight = 0
  account.opened_count = limits.limit - limits.remaining
  account.used = account.opened_count + account.carried
  account.others, account.seen = 0, 0
end

local function lie(limits)
  return limits.limit <= 0 or limits.limit > ABSURD_LIMIT or limits.remaining < 0 or limits.refresh < 0
    or limits.refresh > LONGEST_WINDOW
end

-- What an answer says of its window; `ticket` is the request it answers.
local function record(account, at, ticket, limits)
  local ends = at + limits.refresh
  if lie(limits) then
    -- Nothing to count on until the refresh time: then one probe.
    account.paused_until = math.max(account.paused_until or 0,
      at + math.min(LONGEST_WINDOW, math.max(1, limits.refresh)))
    account.probe, account.unlimited = true, nil
    return
  end
  account.unlimited = nil
  account.limit = limits.limit
  local opened = account.window_end == nil
  if opened then open(account, at, ends, limits) end -- counted there, with this request
  local counted = limits.limit - limits.remaining
  if ticket.gen ~= account.gen and not opened then
    -- An answer to a request of an earlier window: when it ends with that window, it
    -- landed there and frees its place here; otherwise it stays counted. It says
    -- nothing sure of this window's end or of the others' use.
    if ticket.gen == account.gen - 1 then
      if account.prev_end then
        if ends < account.prev_end + 1 then account.used = max0(account.used - 1) end
      elseif counted <= account.opened_count then
        -- Sent before the limit was known and counted before the answer that told it:
        -- it was in that answer's count and in the requests carried, twice.
        account.used = max0(account.used - 1)
      end
    end
    return
  end
  -- (max by comparison, as math.max: the first of equals)
  local refresh = math.ceil(limits.refresh)
  local longest = account.longest or 0
  account.longest = refresh > longest and refresh or longest
  if refresh > account.window then account.window = refresh end
  if account.provisional then
    account.window_end, account.provisional = ends, nil
  elseif ends >= account.window_end + 1 or ends < account.window_end - 1 then
    -- The server's window ends elsewhere than assumed (a window length learned late,
    -- a clock that drifted): its word wins.
    account.window_end = ends
  elseif ends < account.window_end then
    -- Ends are rounded up: the earliest is the closest to the truth.
    account.window_end = ends
  end
  -- Once this window's answers tell the others' use, it replaces the window before's.
  local seen, shown = account.seen or 0, counted - account.used
  if shown > seen then seen = shown end
  account.seen, account.others = seen, seen
end

local function settle(account, at, ticket, limits, status, retry_after)
  if account.window_end then roll(account, at) end
  if ticket.gen == account.gen then
    local in_flight = (account.in_flight or 0) - 1 -- (max0, without a call: every answer)
    account.in_flight = in_flight > 0 and in_flight or 0
  elseif ticket.gen == (account.gen or 0) - 1 then
    account.carried = max0((account.carried or 0) - 1)
  end
  if ticket.probe then account.probe_at = nil end
  local has_limits = limits ~= nil and limits.limit and limits.remaining and limits.refresh
  if has_limits then
    record(account, at, ticket, limits)
  elseif status and ((status >= 200 and status < 300) or (account.limit == nil and status == 404)) then
    -- A success without the headers: not limited (any more). While no limit is known,
    -- the API's own 404 without them says the same; a refused login (401), a gateway's
    -- 5xx say nothing of the limit. The account forgets its window. (Each field is
    -- cleared only when set: storing nil where there is no key costs LuaJIT a trace
    -- exit, 7,800 instructions, and Lua 5.1 a dead key in the table, on every answer of
    -- an API without limits. Here, not in a function: a call on every such answer.)
    account.unlimited = true
    if account.limit ~= nil then account.limit = nil end
    if account.window_end ~= nil then account.window_end = nil end
    if account.prev_end ~= nil then account.prev_end = nil end
    if account.window ~= nil then account.window = nil end
    if account.used ~= nil then account.used = nil end
    if account.others ~= nil then account.others = nil end
    if account.carried ~= nil then account.carried = nil end
    if account.probe ~= nil then account.probe = nil end
    if account.provisional ~= nil then account.provisional = nil end
    if account.seen ~= nil then account.seen = nil end
    if account.longest ~= nil then account.longest = nil end
  end
  if status == 429 then
    -- Everyone waits, then one probe finds out what is left.
    account.unlimited = nil
    account.paused_until = math.max(account.paused_until or 0, at + (retry_after or 1))
    account.probe = true
  elseif ticket.probe and (has_limits or (status and status < 500)) and not account.paused_until then
    account.probe = nil
  end
end

local function describe(account, at)
  if account.paused_until and at < account.paused_until then return "paused after a 429 or a limit of 0" end
  if account.probe or account.limit == nil then return "awaiting the answer of a probe" end
  return string.format("its window (%d requests per %g s) is used up", account.limit, account.window)
end


account_changes.RECHECK, account_changes.MARGIN = RECHECK, MARGIN
account_changes.projected, account_changes.admit, account_changes.settle, account_changes.describe =
  projected, admit, settle, describe

---------------------------------------------------------------------------------------
-- An account as text, for a store that keeps text: each field in ACCOUNT_FIELDS's
-- order, space-separated.

local INFINITY = "inf"

function account_changes.encode(account)
  local parts = {}
  for i, name in ipairs(ACCOUNT_FIELDS) do
    local value = account[name]
    if value == nil then parts[i] = ""
    elseif value == true then parts[i] = "t"
    elseif value == false then parts[i] = "f"
    elseif value == math.huge then parts[i] = INFINITY
    else parts[i] = string.format("%.17g", value) end
  end
  return table.concat(parts, " ")
end

-- (text may be nil, or false: Redis's GET of no key, as a script sees it)
function account_changes.decode(text)
  local account, i = {}, 0
  for part in ((text or "") .. " "):gmatch("([^ ]*) ") do
    i = i + 1
    local name = ACCOUNT_FIELDS[i]
    if name == nil then break end
    if part == "t" then account[name] = true
    elseif part == "f" then account[name] = false
    elseif part == INFINITY then account[name] = math.huge
    elseif part ~= "" then account[name] = tonumber(part) end
  end
  return account
end

---------------------------------------------------------------------------------------
-- A change sent as text (to a Redis script) and its results back: each argument and
-- result a string, "" for nil.

local function number_text(value)
  if value == nil then return "" end
  return string.format("%.17g", value)
end

local function text_number(text)
  if text == nil or text == "" then return nil end
  return tonumber(text)
end

--- The arguments of change `name` (the name of one of this module's changes) as texts.
function account_changes.wire_args(name, at, second, limits, status, retry_after)
  if name == "settle" then
    local ticket = second
    return { number_text(at), number_text(ticket.gen), ticket.probe and "t" or "",
      number_text(limits and limits.limit), number_text(limits and limits.remaining),
      number_text(limits and limits.refresh), number_text(status), number_text(retry_after) }
  end
  return { number_text(at), number_text(second) } -- projected, admit (at, ahead); describe (at)
end

--- Makes change `name` on `account` with the arguments in texts[first...], as
-- wire_args wrote them; returns its results as texts.
function account_changes.wire_call(name, account, texts, first)
  local at = text_number(texts[first])
  if name == "settle" then
    local limits
    if texts[first + 3] ~= "" then
      limits = { limit = text_number(texts[first + 3]), remaining = text_number(texts[first + 4]),
        refresh = text_number(texts[first + 5]) }
    end
    settle(account, at, { gen = text_number(texts[first + 1]), probe = texts[first + 2] == "t" }, limits,
      text_number(texts[first + 6]), text_number(texts[first + 7]))
    return {}
  elseif name == "admit" then
    local ticket, wait = admit(account, at, text_number(texts[first + 1]))
    if ticket then return { "ticket", number_text(ticket.gen), ticket.probe and "t" or "" } end
    return { "wait", number_text(wait) }
  elseif name == "projected" then
    return { number_text(projected(account, at, text_number(texts[first + 1]))) }
  elseif name == "describe" then
    return { describe(account, at) }
  end
  error("no such change: " .. tostring(name))
end

--- The results of change `name` from the texts wire_call returned.
function account_changes.wire_results(name, texts)
  if name == "admit" then
    if texts[1] == "ticket" then
      -- (shared: admitted by a shared store, whose account hears its answer)
      return { gen = text_number(texts[2]), probe = texts[3] == "t" or nil, shared = true }
    end
    return nil, text_number(texts[2])
  elseif name == "projected" then
    return text_number(texts[1])
  elseif name == "describe" then
    return texts[1]
  end
  return nil
end

-- An account that nothing changes is kept this long after its window ends (or its
-- pause), so that its limit and window length are known when requests come again.
local KEPT_AFTER_WINDOW = 60

--- How long a store keeps `account` after a change at `at`, in milliseconds.
function account_changes.keep_ms(account, at)
  local until_time = at
  if account.window_end and account.window_end > until_time then until_time = account.window_end end
  if account.paused_until and account.paused_until > until_time then until_time = account.paused_until end
  return math.floor((until_time - at + KEPT_AFTER_WINDOW) * 1000)
end

--- The change functions by name, and names by function (for a store that runs them
-- elsewhere).
account_changes.name_of = { [projected] = "projected", [admit] = "admit", [settle] = "settle",
  [describe] = "describe" }

return account_changes
