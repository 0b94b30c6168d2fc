--- SIM membership on the command line: `sims` and `subscribers` (soracom-cli's get,
-- set-group and unset-group: one SIM, the API's answer printed as the raw subcommands
-- print theirs), and move-sims (many SIMs through client:move_sims, one call each or
-- as Batch API jobs). Exit codes as the raw subcommands: 0 ok, 1 an API or network
-- error (move-sims: any SIM not moved), 2 a usage error, before anything is sent.

local batch = require "soracom.groups.batch"
local cli = require "soracom.groups.cli"
local core = require "soracom.groups.core"
local output = require "soracom.groups.cli.output"
local raw = require "soracom.groups.cli.raw"
local sims = require "soracom.groups.sims"
local sims_batch = require "soracom.groups.sims_batch"

local OK, FAILED = cli.OK, cli.FAILED
local one_line, usage = cli.one_line, raw.usage

local commands = {}

---------------------------------------------------------------------------------------
-- sims get / set-group / unset-group, subscribers set-group / unset-group

local function sim_id_flag(c) c:option("--sim-id", "SIM ID."):count(1) end
local function imsi_flag(c) c:option("--imsi", "IMSI (one of the SIM's)."):count(1) end

-- The commands that group subcommands, each as soracom-cli names them; their
-- subcommands are described as raw.lua's.
local GROUPINGS = {
  { name = "sims", summary = "Read a SIM, put it into a group or take it out, by its SIM ID (soracom-cli's "
      .. "sims get, set-group and unset-group).",
    commands = {
      { name = "get", summary = "Show a SIM, with the group it is in (GET /sims/{sim_id}).",
        example = "soracom-groups sims get --sim-id 8981100000000000001",
        flags = function(c) sim_id_flag(c) raw.FLAGS.jsonl(c) end,
        run = function(args, ctx) return raw.call(ctx, args, "get_sim", args.sim_id) end },
      { name = "set-group", summary = "Put a SIM into a group, from any other (POST /sims/{sim_id}/set_group).",
        example = "soracom-groups sims set-group --sim-id 8981100000000000001 --group-id ID",
        flags = function(c) sim_id_flag(c) raw.FLAGS.group_id(c) raw.FLAGS.jsonl(c) end,
        run = function(args, ctx) return raw.call(ctx, args, "set_sim_group", args.sim_id, args.group_id) end },
      { name = "unset-group", summary = "Take a SIM out of its group (POST /sims/{sim_id}/unset_group).",
        example = "soracom-groups sims unset-group --sim-id 8981100000000000001",
        flags = function(c) sim_id_flag(c) raw.FLAGS.jsonl(c) end,
        run = function(args, ctx) return raw.call(ctx, args, "unset_sim_group", args.sim_id) end },
    } },
  { name = "subscribers", summary = "Put the SIM holding an IMSI into a group or take it out (soracom-cli's "
      .. "subscribers set-group and unset-group).",
    description = "Put the SIM holding an IMSI into a group or take it out (soracom-cli's subscribers "
      .. "set-group and unset-group). Soracom recommends the SIM ID (the sims subcommands): it covers every "
      .. "IMSI of a SIM.",
    commands = {
      { name = "set-group", summary = "Put the SIM holding an IMSI into a group "
          .. "(POST /subscribers/{imsi}/set_group).",
        example = "soracom-groups subscribers set-group --imsi 440100000000001 --group-id ID",
        flags = function(c) imsi_flag(c) raw.FLAGS.group_id(c) raw.FLAGS.jsonl(c) end,
        run = function(args, ctx) return raw.call(ctx, args, "set_subscriber_group", args.imsi, args.group_id) end },
      { name = "unset-group", summary = "Take the SIM holding an IMSI out of its group "
          .. "(POST /subscribers/{imsi}/unset_group).",
        example = "soracom-groups subscribers unset-group --imsi 440100000000001",
        flags = function(c) imsi_flag(c) raw.FLAGS.jsonl(c) end,
        run = function(args, ctx) return raw.call(ctx, args, "unset_subscriber_group", args.imsi) end },
    } },
}

---------------------------------------------------------------------------------------
-- move-sims: reading the SIMs

-- The most move-sims reads of a file or stdin: list-subscribers' pretty JSON holds
-- about 1 KB a SIM, so some 60,000 SIMs; an endless stdin stops there.
local INPUT_LIMIT = 64 * 1024 * 1024

-- Why text is not a SIM id as the command takes one, or nil.
local function sim_id_problem(text)
  if text == "" then return "is empty" end
  if text:find("%c") then return '"' .. text .. '" holds a control character' end
  if text:find("%s") then return '"' .. text .. '" holds a space' end
  if text == "." or text == ".." then return '"' .. text .. '" is no SIM id' end
end

-- The SIMs of one input, in order, each with where it was read ("line 7"), refusing
-- bad ids and repeats. source names the input in messages ("--from-file sims.txt").
-- add(item, where) returns nil, or why the item is refused (the whole message).
local function new_reader(source)
  -- first_bare: where the first SIM id alone was read; first_unplaced: where the first
  -- SIM object without a "groupId" key was (null says "in no group"; no key says nothing)
  local reader = { sims = {}, first_bare = nil, first_unplaced = nil }
  local where_of = {} -- SIM id -> where it was first read
  local prefix = source and source .. ": " or ""
  function reader.add(item, where)
    local id, kind = item, raw.json_type(item)
    if kind == "an object" then
      id = item.simId
      if type(id) ~= "string" then
        return prefix .. where .. ': a SIM object needs its "simId", a string (got '
          .. (id == nil and "none" or raw.json_type(id)) .. ")"
      end
      local group = item.groupId
      if group ~= nil and group ~= core.null and type(group) ~= "string" then
        return prefix .. where .. ': "groupId" must be a string or null (got ' .. raw.json_type(group) .. ")"
      end
      if group == nil then reader.first_unplaced = reader.first_unplaced or where .. " (" .. id .. ")" end
      item = { simId = id, groupId = group } -- all move_sims reads of it
    elseif kind ~= "a string" then
      return prefix .. where .. ": got " .. kind .. ", not a SIM id (a string) or a SIM object"
    else
      reader.first_bare = reader.first_bare or where
    end
    local problem = sim_id_problem(id)
    if problem then return prefix .. where .. ": the SIM id " .. problem end
    if where_of[id] then return prefix .. where .. " repeats " .. where_of[id] .. " (" .. id .. ")" end
    where_of[id] = where
    reader.sims[#reader.sims + 1] = item
  end
  return reader
end

local FORMATS = "expected one SIM a line (its id, or its JSON object as list-subscribers --jsonl prints it), "
  .. "or a JSON array of SIM ids or SIM objects"

-- Reads the SIMs of text (a file's or stdin's) into reader. Returns nil, or why not.
local function read_text(text, reader, source)
  if text:match("^%s*%[") then
    local list, why = raw.decode_json(text)
    if list == nil then return source .. ": not valid JSON: " .. why .. "; " .. FORMATS end
    local kind = raw.json_type(list)
    if kind ~= "an array" then return source .. ": got " .. kind .. "; " .. FORMATS end
    for i, item in ipairs(list) do
      local refused = reader.add(item, "item " .. i)
      if refused then return refused end
    end
    return nil
  end
  local number, start = 0, 1
  while start <= #text do
    local stop = text:find("\n", start, true) or #text + 1
    number = number + 1
    local line = text:sub(start, stop - 1):match("^%s*(.-)%s*$")
    start = stop + 1
    local where = "line " .. number
    local refused
    if line:sub(1, 1) == "{" then
      local sim, why = raw.decode_json(line)
      if sim == nil then return source .. ": " .. where .. ": not valid JSON: " .. why end
      refused = reader.add(sim, where)
    elseif line ~= "" and line:sub(1, 1) ~= "#" then
      refused = reader.add(line, where)
    end
    if refused then return refused end
  end
end

-- The SIMs args name (--sim-id, --from-file or -): the list for move_sims, or nil, why.
local function read_sims(args, ctx)
  local given = {}
  if args.sim_id[1] then given[#given + 1] = "--sim-id" end
  if args.from_file then given[#given + 1] = "--from-file" end
  if args.input then given[#given + 1] = "-" end
  if args.input and args.input ~= "-" then
    return nil, "unexpected argument '" .. args.input .. "': the only word move-sims takes is - (read the SIMs "
      .. "from stdin); give each SIM as --sim-id ID"
  end
  if #given ~= 1 then
    return nil, (#given == 0 and "no SIMs given" or "SIMs given by both " .. given[1] .. " and " .. given[2])
      .. ": give them by --sim-id ID (repeated), --from-file FILE or - (stdin)"
  end
  local reader
  if args.sim_id[1] then
    reader = new_reader(nil)
    for i, id in ipairs(args.sim_id) do
      local refused = reader.add(id, "--sim-id #" .. i)
      if refused then return nil, refused end
    end
  else
    local path = args.from_file or "-"
    local source = path == "-" and "stdin" or "--from-file " .. path
    local text, why = raw.read_input(path, ctx.stdin, INPUT_LIMIT, source)
    if text == nil then return nil, why end
    reader = new_reader(source)
    why = read_text(text, reader, source)
    if why then return nil, why end
    if reader.sims[1] == nil then return nil, source .. ": no SIM in it; " .. FORMATS end
  end
  if args.skip_current and reader.first_bare then
    return nil, "--skip-current needs each SIM's current group: give SIM objects (with simId and groupId, as "
      .. "list-subscribers prints them), not SIM ids alone (" .. reader.first_bare .. ")"
  end
  if args.skip_current and reader.first_unplaced then
    -- move_sims would take a SIM object without it for one in no group, and --unset
    -- would then leave alone a SIM that is in a group
    return nil, "--skip-current needs each SIM's current group: the SIM object at " .. reader.first_unplaced
      .. ' has no "groupId" (give null for a SIM in no group)'
  end
  return reader.sims
end

---------------------------------------------------------------------------------------
-- move-sims: progress and results

local function plural(n, word)
  return n .. " " .. word .. (n == 1 and "" or "s")
end

-- The progress line: "moved 1200/2000, failed 3, job 1234 running".
local function progress_line(progress)
  local parts = { "moved " .. progress.moved .. "/" .. progress.total }
  if progress.skipped > 0 then parts[#parts + 1] = "skipped " .. progress.skipped end
  parts[#parts + 1] = "failed " .. progress.failed
  if progress.unknown > 0 then parts[#parts + 1] = "unknown " .. progress.unknown end
  if progress.waiting_for then
    parts[#parts + 1] = "waiting for job " .. progress.waiting_for .. " (another move of the same kind) to end"
  elseif progress.job_id then
    parts[#parts + 1] = "job " .. progress.job_id .. (progress.done < progress.total and " running" or " done")
  end
  return one_line(table.concat(parts, ", "))
end

local function summary_line(summary, group_id)
  local how = "one call each"
  if summary.mode == "batch" then
    local jobs = summary.jobs or {}
    how = "Batch API" .. (jobs[1] and " job" .. (jobs[2] and "s " or " ") .. table.concat(jobs, ", ") or "")
  end
  local unknown = summary.unknown > 0 and " (" .. summary.unknown .. " of them unknown: their job may still move "
    .. "them)" or ""
  return one_line(string.format("Moved %d of %s %s, skipped %d, failed %d%s (%s).", summary.moved,
    plural(summary.total, "SIM"), group_id and "into group " .. group_id or "out of their groups",
    summary.skipped, summary.failed, unknown, how))
end

local function error_json(err)
  if type(err) ~= "table" then return { message = tostring(err) } end
  return { kind = err.kind, status = err.status, code = err.code, message = err.message,
    method = err.method, path = err.path }
end

-- The results and the summary as --json prints them.
local function results_json(results, summary, group_id)
  local list = setmetatable({}, core.array_mt)
  for i, result in ipairs(results) do
    list[i] = { simId = result.sim_id, ok = result.ok, skipped = result.skipped, unknown = result.unknown,
      error = result.err and error_json(result.err) or nil }
  end
  local shown = { mode = summary.mode, groupId = group_id or core.null, total = summary.total,
    moved = summary.moved, skipped = summary.skipped, failed = summary.failed, unknown = summary.unknown }
  if summary.mode == "batch" then
    shown.jobs = setmetatable({}, core.array_mt)
    for i, job in ipairs(summary.jobs or {}) do shown.jobs[i] = job end
  end
  return { results = list, summary = shown }
end

local function run_move_sims(args, ctx)
  if args.group_id == nil and not args.unset then
    return usage(ctx, "give --group-id G to move the SIMs into a group, or --unset to take them out of theirs")
  end
  if args.batch and args.concurrency then
    return usage(ctx, "--concurrency sets the calls made at once, and --batch makes none: the Batch API "
      .. "moves the SIMs")
  end
  if args.no_batch and args.job_timeout then
    return usage(ctx, "--job-timeout bounds a Batch API job, and --no-batch makes none: one call moves each SIM")
  end
  local list, why = read_sims(args, ctx)
  if list == nil then return usage(ctx, why) end
  local drawn = false
  local options = { concurrency = args.concurrency, skip_current = args.skip_current, job_timeout = args.job_timeout }
  if args.batch then options.batch = true elseif args.no_batch then options.batch = false end
  if ctx.stderr_is_terminal() then
    options.on_progress = function(progress)
      ctx.stderr:write("\r", progress_line(progress), "\027[K")
      ctx.stderr:flush()
      drawn = true
    end
  end
  local results, summary = raw.invoke(ctx, "move_sims", list, args.group_id, options)
  if drawn then ctx.stderr:write("\n") end
  if results == nil then return summary end -- the exit code
  for _, result in ipairs(results) do
    if not result.ok then
      local text = tostring(result.err):gsub("^soracom%-groups: ", "")
      ctx.stderr:write("soracom-groups: SIM ", result.sim_id, ": ", one_line(text), "\n")
    end
  end
  local printed, failure
  if args.json then
    printed, failure = output.print(ctx.stdout, results_json(results, summary, args.group_id))
  else
    printed, failure = output.write(ctx.stdout, summary_line(summary, args.group_id), "\n")
  end
  if not printed then
    ctx.stderr:write("soracom-groups: ", failure, "\n")
    return FAILED
  end
  return summary.failed == 0 and OK or FAILED
end

local MOVE_SIMS = {
  name = "move-sims",
  summary = "Put many SIMs into a group or take them out of theirs (one call each, or Batch API jobs).",
  description = "Put many SIMs into a group (--group-id) or take them out of theirs (--unset): one call "
    .. "each within the rate budget, or as Batch API jobs (more than " .. sims.BATCH_THRESHOLD
    .. " SIMs, unless --batch or --no-batch says).",
  notes = "SIMs: --sim-id ID (repeated), or --from-file FILE or - (stdin) holding one SIM a line, its id or\n"
    .. "its JSON object (blank lines and lines starting with # skipped), or a JSON array of SIM ids or\n"
    .. "SIM objects (objects with simId, as list-subscribers prints them). A repeated SIM is refused.\n"
    .. "On a terminal, stderr shows the progress; stdout gets a summary line (or, with --json, JSON).\n"
    .. "Exit codes: 0 every SIM moved (or already there), 1 any SIM not moved (each on stderr with its\n"
    .. "SIM id and error), 2 a usage error (nothing sent).",
  example = "soracom-groups list-subscribers --group-id OLD --fetch-all --jsonl | soracom-groups move-sims "
    .. "--group-id NEW -",
  flags = function(c)
    c:argument("-", "Read the SIMs from stdin (as --from-file -)."):args("?"):argname("-"):target("input")
    c:mutex(
      c:option("--group-id", "The group to put the SIMs into."),
      c:flag("--unset", "Take the SIMs out of their groups instead."))
    c:option("--sim-id", "A SIM ID (repeat the flag for more SIMs)."):count("*")
    c:option("--from-file", "Read the SIMs from FILE (- : stdin)."):argname("<file>")
    c:mutex(
      c:flag("--batch", "Always as Batch API jobs."),
      c:flag("--no-batch", "Always one call per SIM."))
    c:option("--concurrency", "SIMs moved at once, one call each (" .. batch.DEFAULTS.concurrency .. ").")
      :argname("<n>"):convert(raw.positive_integer("--concurrency", batch.MAX_CONCURRENCY))
    c:option("--job-timeout", "Seconds a Batch API job may take, the wait for another before it included ("
      .. sims_batch.DEFAULT_JOB_TIMEOUT .. "); its SIMs are then reported unknown.")
      :argname("<seconds>"):convert(raw.positive_integer("--job-timeout"))
    c:flag("--skip-current", "Leave alone the SIMs already in place (needs SIM objects, each with its "
      .. "\"groupId\": null for none).")
    c:flag("--json", "Print each SIM's result and the summary as JSON.")
  end,
  run = run_move_sims,
}

--- Adds sims, subscribers and move-sims to parser; returns name -> handler(args, ctx).
function commands.add_commands(parser)
  local handlers = {}
  for _, grouping in ipairs(GROUPINGS) do
    local target = grouping.name .. "_command"
    local group = parser:command(grouping.name, grouping.description or grouping.summary)
      :summary(grouping.summary):command_target(target)
    local inner = {}
    for _, command in ipairs(grouping.commands) do
      inner[command.name] = raw.add_command(group, command)
    end
    handlers[grouping.name] = function(args, ctx) return inner[args[target]](args, ctx) end
  end
  handlers[MOVE_SIMS.name] = raw.add_command(parser, MOVE_SIMS)
  return handlers
end

return commands
