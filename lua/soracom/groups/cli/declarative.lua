--- export, plan and apply: the desired-state subcommands of soracom-groups, over
-- desired.lua (the document), plan.lua (what would change) and apply.lua (doing it).
--
-- plan's exit codes follow terraform's -detailed-exitcode: 0 nothing to do, 2 changes
-- to make, 1 an error.

local apply = require "soracom.groups.apply"
local desired = require "soracom.groups.desired"
local plan = require "soracom.groups.plan"

local OK, FAILED, USAGE, CHANGES = 0, 1, 2, 2

local declarative = {}

-- Whether file descriptor fd is a terminal (the shell's test -t; Lua has no isatty).
local function is_tty(fd)
  local status = os.execute("test -t " .. fd .. " 2>/dev/null")
  return status == true or status == 0
end

local function failed(ctx, err)
  ctx.stderr:write(tostring(err), "\n")
  return FAILED
end

local function client_of(ctx)
  local client, message, code = ctx.client()
  if client == nil then ctx.stderr:write(message, "\n") end
  return client, code
end

local function tag_options(command)
  command:option("--tag-name", "Only groups with this tag ...")
  command:option("--tag-value", "... and this value.")
  command:option("--tag-value-match-mode", "How --tag-value matches."):choices { "exact", "prefix" }
end

local function positive_integer(flag)
  return function(text)
    local n = tonumber(text)
    if n == nil or n < 1 or n ~= math.floor(n) then
      return nil, flag .. " expects a whole number of 1 or more (got '" .. text .. "')"
    end
    return n
  end
end

local function run_export(args, ctx)
  local client, code = client_of(ctx)
  if client == nil then return code end
  local document, unnamed = desired.export(client, { tag_name = args.tag_name, tag_value = args.tag_value,
    tag_value_match_mode = args.tag_value_match_mode })
  if document == nil then return failed(ctx, unnamed) end
  local text = desired.encode(document) .. "\n"
  if args.output then
    local file, why = io.open(args.output, "wb")
    if file == nil then return failed(ctx, "soracom-groups: export: -o " .. args.output .. ": " .. why) end
    file:write(text)
    file:close()
  else
    ctx.stdout:write(text)
  end
  if #unnamed > 0 then
    ctx.stderr:write("soracom-groups: export: ", #unnamed, " group(s) without a name tag left out: ",
      table.concat(unnamed, ", "), "\n")
  end
  return OK
end

-- The plan of args.file against the account: plan, client; or nil, exit code.
local function make_plan(args, ctx)
  local document, err = desired.load(args.file)
  if document == nil then return nil, failed(ctx, err) end
  local client, code = client_of(ctx)
  if client == nil then return nil, code end
  local account
  account, err = desired.list(client)
  if account == nil then return nil, failed(ctx, err) end
  local p
  p, err = plan.compare(document, account, { prune = args.prune })
  if p == nil then return nil, failed(ctx, err) end
  return p, client
end

local function show(p, ctx, as_json)
  if as_json then
    ctx.stdout:write(plan.to_json(p), "\n")
  else
    ctx.stdout:write(table.concat(plan.render(p), "\n"), "\n")
  end
end

local function run_plan(args, ctx)
  local p, code = make_plan(args, ctx)
  if p == nil then return code end
  show(p, ctx, args.json)
  return plan.empty(p) and OK or CHANGES
end

-- Asks on the terminal; a run without one needs --yes.
local function confirmed(args, ctx)
  if args.yes then return true end
  if not (is_tty(0) and is_tty(1)) then
    ctx.stderr:write("soracom-groups: apply: not on a terminal, so nothing was changed: "
      .. "pass --yes to apply without asking\n")
    return false, USAGE
  end
  ctx.stdout:write("Apply these changes? Only 'yes' goes on: ")
  ctx.stdout:flush()
  local answer = ctx.stdin:read("*l")
  if answer ~= "yes" then
    ctx.stdout:write("Apply cancelled: nothing was changed.\n")
    return false, FAILED
  end
  return true
end

local function run_apply(args, ctx)
  local p, client = make_plan(args, ctx)
  if p == nil then return client end
  show(p, ctx, false)
  if args.dry_run then return plan.empty(p) and OK or CHANGES end
  if plan.empty(p) then return OK end
  local go, code = confirmed(args, ctx)
  if not go then return code end
  local progress = is_tty(2) and function(done, total, name, outcome)
    ctx.stderr:write(string.format("\r[%d/%d] %s: %s\027[K", done, total, name, outcome))
    if done == total then ctx.stderr:write("\n") end
  end or nil
  local summary = apply.run(client, p, { concurrency = args.concurrency, on_progress = progress })
  for _, skipped in ipairs(summary.skipped) do
    ctx.stdout:write("skipped ", skipped.name, ": ", skipped.reason, "\n")
  end
  for _, failure in ipairs(summary.failed) do
    ctx.stdout:write("failed ", failure.name, ": ", tostring(failure.err), "\n")
  end
  ctx.stdout:write(string.format("Applied %d, skipped %d, failed %d.\n", summary.applied,
    #summary.skipped, #summary.failed))
  return (#summary.skipped + #summary.failed == 0) and OK or FAILED
end

function declarative.add_commands(parser)
  local export = parser:command("export", "Write the account's groups (or those the tag flags select) "
    .. "as a desired-state document: JSON, keys sorted, groups by their name tag.")
  tag_options(export)
  export:option("-o --output", "Write the document to this file instead of stdout.")
  export:epilog("Example: soracom-groups export --tag-name env --tag-value prod -o prod.json")

  local planning = parser:command("plan", "Show what apply would change to make the account match FILE "
    .. "(JSON, or a .lua file returning the document).")
  planning:argument("file", "The desired-state document.")
  planning:flag("--prune", "Also delete groups and namespaces the document does not list.")
  planning:flag("--json", "Print the plan as JSON.")
  planning:epilog("Exit codes: 0 nothing to do, 2 changes to make (or a usage error), 1 an error.\n"
    .. "Example: soracom-groups plan prod.json")

  local applying = parser:command("apply", "Make the changes plan shows, and nothing else; asks first "
    .. "on a terminal.")
  applying:argument("file", "The desired-state document.")
  applying:flag("--prune", "Also delete groups and namespaces the document does not list.")
  applying:flag("--yes", "Apply without asking (needed when not on a terminal).")
  applying:flag("--dry-run", "Only show the plan (as plan does, with its exit codes).")
  applying:option("--concurrency", "Groups changed at once (8).")
    :convert(positive_integer("--concurrency"))
  applying:epilog("Exit codes: 0 done (or nothing to do), 1 a group failed or was skipped, 2 usage.\n"
    .. "Example: soracom-groups apply prod.json --yes")

  return { export = run_export, plan = run_plan, apply = run_apply }
end

return declarative
