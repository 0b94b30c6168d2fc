--- export, plan and apply: the desired-state subcommands of soracom-groups, over
-- desired.lua (the document), account.lua (reading the account), plan.lua (what would
-- change), plan_view.lua (showing it), plan_file.lua (saved plans) and apply.lua
-- (doing it).
--
-- Exit codes follow terraform's -detailed-exitcode: 0 nothing to do (or done), 2
-- changes to make (plan, apply --dry-run), 1 every error, a usage error included.

local account = require "soracom.groups.account"
local apply = require "soracom.groups.apply"
local batch = require "soracom.groups.batch"
local core = require "soracom.groups.core"
local desired = require "soracom.groups.desired"
local output = require "soracom.groups.cli.output"
local plan = require "soracom.groups.plan"
local plan_file = require "soracom.groups.plan_file"
local plan_view = require "soracom.groups.plan_view"

local OK, FAILED, CHANGES = 0, 1, 2
local USAGE = FAILED -- a CI job reads 2 as "changes to make": no usage error may say so

local declarative = {}

-- Whether file descriptor fd (stdin or stdout: stderr is redirected here; the progress
-- line asks ctx.stderr_is_terminal) is a terminal (the shell's test -t; Lua has no isatty).
local function is_tty(fd)
  local status = os.execute("test -t " .. fd .. " 2>/dev/null")
  return status == true or status == 0
end

-- Messages may quote a document's names and values: escaped as the plan is.
local function failed(ctx, err)
  ctx.stderr:write(plan_view.printable(tostring(err)), "\n")
  return FAILED
end

local function usage(ctx, command, message)
  ctx.stderr:write("soracom-groups: ", command, ": ", message, "\nTry 'soracom-groups ", command, " --help'.\n")
  return USAGE
end

local function client_of(ctx)
  local client, message = ctx.client()
  if client == nil then ctx.stderr:write(message, "\n") end
  return client
end

-- Writes text to stdout; true, or nil after saying why (a closed pipe, a full disk).
local function put(ctx, text)
  local ok, why = output.write(ctx.stdout, text)
  if not ok then
    ctx.stderr:write("soracom-groups: ", why, "\n")
    return nil
  end
  return true
end

local function whole_number(flag, min, max)
  return function(text)
    local n = tonumber(text)
    if n == nil or n ~= math.floor(n) or n == math.huge or n < min or (max and n > max) then
      return nil, flag .. " expects a whole number from " .. min .. (max and " to " .. max or " up") .. " (got '"
        .. text .. "')"
    end
    return math.floor(n)
  end
end

---------------------------------------------------------------------------------------
-- export

-- The scope of export's tag flags, or nil, why (a flag without its partner).
local function export_scope(args)
  if args.tag_name == nil and args.tag_value == nil then
    if args.tag_value_match_mode then return nil, "--tag-value-match-mode needs --tag-name and --tag-value" end
    return desired.scope_of(nil)
  end
  if args.tag_name == nil or args.tag_name == "" then return nil, "--tag-value needs --tag-name" end
  if args.tag_value == nil then return nil, "--tag-name needs --tag-value (the groups whose tag has that value)" end
  return desired.scope_of { tag_name = args.tag_name, tag_value = args.tag_value,
    tag_value_match_mode = args.tag_value_match_mode }
end

local function run_export(args, ctx)
  local scope, why = export_scope(args)
  if scope == nil then return usage(ctx, "export", why) end
  if args.secrets_as_env and not args.secrets_as_env:match("^[%a_][%w_]*$") then
    return usage(ctx, "export", "--secrets-as-env expects a variable name prefix such as SORACOM_SECRET")
  end
  local client = client_of(ctx)
  if client == nil then return FAILED end
  local list, err = desired.list(client, desired.scope_query(scope))
  if list == nil then return failed(ctx, err) end
  local members
  if args.with_sims then
    local ids = {}
    for _, group in ipairs(list) do
      if desired.group_name(group) then ids[#ids + 1] = group.groupId end
    end
    members, err = account.read_members(client, ids)
    if members == nil then return failed(ctx, err) end
  end
  local document, unnamed = desired.from_groups(list, scope, members)
  local variables, secret_tags = {}, {}
  if args.secrets_as_env then
    document, variables, secret_tags = desired.secrets_as_env(document, args.secrets_as_env:upper())
  end
  local text = desired.encode(document)
  if args.output then
    local written, write_err = core.write_private_file(args.output, text)
    if not written then return failed(ctx, "soracom-groups: export: -o " .. args.output .. ": " .. write_err) end
  elseif not put(ctx, text) then
    return FAILED
  end
  if #unnamed > 0 then
    ctx.stderr:write("soracom-groups: export: ", #unnamed, " group(s) without a name tag left out\n")
  end
  for _, where in ipairs(secret_tags) do
    ctx.stderr:write("soracom-groups: export: warning: ", plan_view.printable(where), " looks like a secret; "
      .. "a tag cannot be a reference, so it is written as it is\n")
  end
  if #variables > 0 then
    ctx.stderr:write("soracom-groups: export: set these variables before plan or apply:\n")
    for _, variable in ipairs(variables) do
      ctx.stderr:write("  ", variable.variable, "  (", plan_view.printable(variable.where), ")\n")
    end
  end
  return OK
end

---------------------------------------------------------------------------------------
-- plan

local function warn(ctx, p)
  for _, warning in ipairs(p.warnings or {}) do
    ctx.stderr:write("soracom-groups: warning: ", plan_view.printable(warning), "\n")
  end
end

-- The plan of a desired document against the account: plan, client, document; or
-- nil, exit code.
local function make_plan(args, ctx)
  local document, err = desired.load(args.file)
  if document == nil then return nil, failed(ctx, err) end
  local client = client_of(ctx)
  if client == nil then return nil, FAILED end
  local groups
  groups, err = account.read(client, document)
  if groups == nil then return nil, failed(ctx, err) end
  local ids, members
  ids, err = plan.member_groups(document, groups)
  if ids == nil then return nil, failed(ctx, err) end
  members, err = account.read_members(client, ids)
  if members == nil then return nil, failed(ctx, err) end
  -- Where each SIM moving in is now, when no listing above shows it: one GET each.
  local sims
  ids, err = plan.sims_to_locate(document, groups, members)
  if ids == nil then return nil, failed(ctx, err) end
  sims, err = account.read_sims(client, ids)
  if sims == nil then return nil, failed(ctx, err) end
  local p
  p, err = plan.compare(document, groups, { prune = args.prune, prune_namespaces = args.prune_namespaces,
    prune_sims = args.prune_sims, allow_sims_from_outside_scope = args.allow_sims_from_outside_scope,
    members = members, sims = sims })
  if p == nil then return nil, failed(ctx, err) end
  local counted
  counted, err = account.count_deleted_sims(client, p)
  if not counted then return nil, failed(ctx, err) end
  warn(ctx, p)
  return p, client, document
end

local function show(p, ctx, args, stream)
  if args.json then return put(ctx, plan.to_json(p)) end
  local text = table.concat(plan_view.render(p, { show_unmanaged = args.show_unmanaged }), "\n") .. "\n"
  if stream then
    stream:write(text)
    return true
  end
  return put(ctx, text)
end

local function run_plan(args, ctx)
  local p, client, document = make_plan(args, ctx)
  if p == nil then return client end
  if not show(p, ctx, args) then return FAILED end
  if args.out then
    local written, why = core.write_private_file(args.out, plan_file.encode(p, document.source,
      client:endpoint()))
    if not written then return failed(ctx, "soracom-groups: plan: -o " .. args.out .. ": " .. why) end
  end
  return plan.empty(p) and OK or CHANGES
end

---------------------------------------------------------------------------------------
-- apply

-- Asks on the terminal; a run without one needs --yes.
local function confirmed(args, ctx)
  if args.yes then return true end
  if not (is_tty(0) and is_tty(1)) then
    ctx.stderr:write("soracom-groups: apply: not on a terminal, so nothing was changed: "
      .. "pass --yes to apply without asking\n")
    return false
  end
  ctx.stdout:write("Apply these changes? Only 'yes' goes on: ")
  ctx.stdout:flush()
  if ctx.stdin:read("*l") ~= "yes" then
    ctx.stdout:write("Apply cancelled: nothing was changed.\n")
    return false
  end
  return true
end

-- Whether a file holds a saved plan rather than a desired document.
local function saved_plan_text(path)
  if path:match("%.lua$") then return nil end
  local file = io.open(path, "rb")
  if file == nil then return nil end
  local text = file:read("*a")
  file:close()
  local value = text and core.decode_json(text)
  if plan_file.is_plan(value) then return text end
  return nil
end

-- The plan apply carries out: a saved one, or a new one of the desired document.
local function plan_to_apply(args, ctx)
  local text = saved_plan_text(args.file)
  if text == nil then return make_plan(args, ctx) end
  if args.prune or args.prune_namespaces or args.prune_sims or args.allow_sims_from_outside_scope then
    return nil, usage(ctx, "apply", "a saved plan is applied as it was made: --prune, --prune-namespaces, "
      .. "--prune-sims and --allow-sims-from-outside-scope belong to the plan command")
  end
  local p, err = plan_file.decode(text)
  if p == nil then return nil, failed(ctx, "soracom-groups: apply: " .. args.file .. ": " .. err.message) end
  local client = client_of(ctx)
  if client == nil then return nil, FAILED end
  if p.endpoint and p.endpoint ~= client:endpoint() then
    return nil, failed(ctx, "soracom-groups: apply: " .. args.file .. " was planned against " .. p.endpoint
      .. ", not " .. client:endpoint() .. ": plan again against this one")
  end
  return p, client
end

local function error_json(err)
  return { kind = err.kind, status = err.status, code = err.code, message = err.message }
end

-- The result of apply as JSON: what was created (with the new ids), changed, deleted,
-- skipped (with why) and failed (with the error, and each SIM that did not move).
local NO_SIMS = { moved_in = 0, moved_out = 0, failed = 0 }

local function summary_json(summary)
  local sims = summary.sims or NO_SIMS
  local function list(items, extra)
    local result = setmetatable({}, core.array_mt)
    for i, item in ipairs(items) do
      result[i] = { name = item.name, groupId = item.group_id }
      if extra then extra(result[i], item) end
    end
    return result
  end
  return desired.encode {
    created = list(summary.created), changed = list(summary.changed), deleted = list(summary.deleted),
    skipped = list(summary.skipped, function(shown, item) shown.reason = item.reason end),
    failed = list(summary.failed, function(shown, item)
      shown.error = error_json(item.err)
      if item.err.sims then
        local failures = setmetatable({}, core.array_mt)
        for i, failure in ipairs(item.err.sims) do
          failures[i] = { simId = failure.sim_id, error = error_json(failure.err) }
        end
        shown.error.sims = failures
      end
    end),
    summary = { applied = summary.applied, skipped = #summary.skipped, failed = #summary.failed },
    sims = { movedIn = sims.moved_in, movedOut = sims.moved_out, failed = sims.failed },
  }
end

local function report(ctx, args, summary)
  if args.json then return put(ctx, summary_json(summary)) end
  local lines = {}
  for _, skipped in ipairs(summary.skipped) do
    -- (a reason may quote a SIM id or a group name of the document)
    lines[#lines + 1] = "skipped " .. plan_view.printable(skipped.name) .. ": " .. plan_view.printable(skipped.reason)
  end
  for _, failure in ipairs(summary.failed) do
    lines[#lines + 1] = "failed " .. plan_view.printable(failure.name) .. ": " .. plan_view.printable(failure.err)
  end
  lines[#lines + 1] = string.format("Applied %d, skipped %d, failed %d.", summary.applied, #summary.skipped,
    #summary.failed)
  local sims = summary.sims or NO_SIMS
  if sims.moved_in + sims.moved_out + sims.failed > 0 then
    lines[#lines + 1] = string.format("SIMs: %d moved in, %d moved out, %d failed.", sims.moved_in, sims.moved_out,
      sims.failed)
  end
  return put(ctx, table.concat(lines, "\n") .. "\n")
end

local function run_apply(args, ctx)
  local p, client = plan_to_apply(args, ctx)
  if p == nil then return client end
  -- With --json, stdout carries the result alone; the plan goes to stderr.
  if not show(p, ctx, { show_unmanaged = args.show_unmanaged }, args.json and ctx.stderr or nil) then return FAILED end
  if args.dry_run then return plan.empty(p) and OK or CHANGES end
  if plan.empty(p) then
    if args.json then return put(ctx, summary_json { applied = 0, created = {}, changed = {}, deleted = {},
      skipped = {}, failed = {} }) and OK or FAILED end
    return OK
  end
  local options = { concurrency = args.concurrency, max_deletes = args.max_deletes,
    allow_delete_with_sims = args.allow_delete_with_sims or nil }
  local refusal = apply.refused(p, options)
  if refusal then return failed(ctx, "soracom-groups: apply: " .. refusal) end
  if not confirmed(args, ctx) then return FAILED end
  local on_terminal = ctx.stderr_is_terminal()
  options.on_progress = on_terminal and function(done, total, name, outcome)
    ctx.stderr:write(string.format("\r[%d/%d] %s: %s\027[K", done, total, plan_view.printable(name), outcome))
    if done == total then ctx.stderr:write("\n") end
  end or nil
  options.on_sims_progress = on_terminal and function(direction, name, progress)
    local what = direction == "in" and "SIMs into " .. plan_view.printable(name) or "SIMs out"
    ctx.stderr:write(string.format("\r%s: %d/%s moved, %d failed\027[K", what, progress.moved or 0,
      tostring(progress.total or "?"), progress.failed or 0))
  end or nil
  local summary, err = apply.run(client, p, options)
  if summary == nil then return failed(ctx, err) end
  if not report(ctx, args, summary) then return FAILED end
  return (#summary.skipped + #summary.failed == 0) and OK or FAILED
end

---------------------------------------------------------------------------------------

local function tag_options(command)
  command:option("--tag-name", "Only groups with this tag (with --tag-value); the document's scope.")
  command:option("--tag-value", "... and this value.")
  command:option("--tag-value-match-mode", "How --tag-value matches."):choices { "exact", "prefix" }
end

local function plan_options(command)
  command:argument("file", "The desired-state document (JSON, or a .lua file returning it).")
  command:flag("--prune", "Also delete the named groups of the document's scope that it does not list "
    .. "(needs a scope in the document).")
  command:flag("--prune-namespaces", "Also delete the namespaces of listed groups that the document does not list.")
  command:flag("--prune-sims", "Also move out (to no group) the SIMs of groups listing \"sims\" that no group of "
    .. "the document lists (needs a scope in the document).")
  command:flag("--allow-sims-from-outside-scope", "Let a group of the document take in SIMs that are in "
    .. "groups the document does not own (outside its scope, or not listed by a document without one).")
  command:flag("--show-unmanaged", "List the groups and namespaces left alone, one a line.")
end

function declarative.add_commands(parser)
  local export = parser:command("export", "Write the account's groups (or those the tag flags select) "
    .. "as a desired-state document: JSON, keys sorted, with its scope and each group's id; "
    .. "written 0600, whole or not at all.")
  tag_options(export)
  export:option("-o --output", "Write the document to this file instead of stdout.")
  export:option("--secrets-as-env", "Write secret settings as {\"$env\": \"PREFIX_...\"} references, "
    .. "and list the variables to set.")
  export:flag("--with-sims", "Also write each group's SIMs (\"sims\": their simIds, sorted), so that plan and "
    .. "apply manage which SIMs each group holds.")
  export:epilog("Exit codes: 0 written, 1 an error (a usage error too).\n"
    .. "Example: soracom-groups export --tag-name env --tag-value prod -o prod.json")

  local planning = parser:command("plan", "Show what apply would change to make the account match FILE.")
  plan_options(planning)
  planning:flag("--json", "Print the plan as JSON.")
  planning:option("-o --out", "Save the plan to this file, for `apply PLANFILE` (it holds no secret value).")
  planning:epilog("Exit codes: 0 nothing to do, 2 changes to make, 1 an error (a usage error too).\n"
    .. "Example: soracom-groups plan prod.json -o prod.plan")

  local applying = parser:command("apply", "Make the changes plan shows, and nothing else; asks first "
    .. "on a terminal. FILE is a desired document, or a plan saved by plan -o (applied as it is).")
  plan_options(applying)
  applying:flag("--yes", "Apply without asking (needed when not on a terminal).")
  applying:flag("--dry-run", "Only show the plan (as plan does, with its exit codes).")
  applying:flag("--json", "Print the result as JSON (created ids, changed, skipped and failed groups); "
    .. "the plan goes to stderr.")
  applying:option("--concurrency", "Groups changed at once (8).")
    :convert(whole_number("--concurrency", 1, batch.MAX_CONCURRENCY))
  applying:option("--max-deletes", "Refuse a run that deletes more groups than this ("
    .. apply.DEFAULT_MAX_DELETES .. ").")
    :convert(whole_number("--max-deletes", 0))
  applying:flag("--allow-delete-with-sims", "Delete groups even when they hold SIMs.")
  applying:epilog("Exit codes: 0 done (or nothing to do), 1 an error, a refusal or a group failed or "
    .. "skipped (a usage error too); with --dry-run, 2 changes to make.\n"
    .. "Example: soracom-groups apply prod.plan --yes")

  return { export = run_export, plan = run_plan, apply = run_apply },
    { export = USAGE, plan = USAGE, apply = USAGE }
end

return declarative
