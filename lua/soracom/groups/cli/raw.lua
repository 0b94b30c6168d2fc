--- The ten raw subcommands, named and flagged as soracom-cli's `groups` ones, each
-- one client method (or, with --fetch-all, one iterator).

local core = require "soracom.groups.core"
local Error = require "soracom.groups.error"
local output = require "soracom.groups.cli.output"
local cli = require "soracom.groups.cli"

local strip_position, one_line = cli.strip_position, cli.one_line

local OK, FAILED, USAGE = 0, 1, 2
local unpack = table.unpack or unpack

local raw = {}

-- The most --body may hold: far more than any group's settings, and a stray @/dev/zero
-- or an endless stdin is never read whole.
local BODY_LIMIT = 1024 * 1024

-- Reads at most limit bytes of stream: the text, or nil, why (naming source).
local function read_limited(stream, source, limit)
  local text, why = stream:read(limit + 1)
  if text == nil and why then return nil, source .. ": cannot read it: " .. why end
  text = text or "" -- read(n) gives nil alone at the end of the input
  if #text > limit then
    return nil, source .. ": larger than " .. limit .. " bytes, the most the command reads"
  end
  return text
end

--- The text of the file at path ("-": stdin), at most limit bytes; or nil, why.
-- source names the input in messages ("--body @x.json").
function raw.read_input(path, stdin, limit, source)
  if path == "-" then return read_limited(stdin, source, limit) end
  local file, why = io.open(path, "rb")
  if file == nil then return nil, source .. ": cannot read the file: " .. why end
  local text
  text, why = read_limited(file, source, limit)
  file:close()
  return text, why
end

--- The value of JSON text, or nil and why it is not valid JSON.
function raw.decode_json(text)
  local ok, value, err = pcall(core.decode_json, text)
  if ok and value ~= nil then return value end
  return nil, strip_position(ok and (err and (err.message or err)) or value)
end

-- --body VALUE: JSON text, @FILE or - (stdin), as soracom-cli takes it.
-- Returns the decoded value, or nil, why.
local function read_body(text, stdin)
  local source, json, why = "--body", text, nil
  if text == "-" then
    source = "--body - (stdin)"
    json, why = raw.read_input("-", stdin, BODY_LIMIT, source)
  elseif text:sub(1, 1) == "@" then
    source = "--body " .. text
    json, why = raw.read_input(text:sub(2), stdin, BODY_LIMIT, source)
  end
  if json == nil then return nil, why end
  if not json:find("%S") then return nil, source .. ": empty; expected JSON text, @FILE or - (stdin)" end
  local value
  value, why = raw.decode_json(json)
  if value == nil then
    return nil, source .. ": expected JSON text, @FILE or - (stdin); not valid JSON: " .. why
  end
  return value
end

-- put-config's and put-tags' --body is exactly the API's: an array of objects with
-- these two keys. The library also takes a plain {name = value} map from Lua code; the
-- command does not guess, so that a mistyped body is refused rather than sent.
local RECORD_SHAPES = {
  put_config = { name = "key", value = "value",
    example = '[{"key": "useCustomDns", "value": true}, ...]' },
  put_tags = { name = "tagName", value = "tagValue", value_type = "string",
    example = '[{"tagName": "env", "tagValue": "prod"}, ...]' },
}

--- A decoded JSON value's type, as the messages name it: "an object", "null", ...
local function json_type(value)
  if value == core.null then return "null" end
  if type(value) == "table" then
    return getmetatable(value) == core.array_mt and "an array" or "an object"
  end
  return "a " .. type(value) -- a string, a number, a boolean
end
raw.json_type = json_type

-- Where and why body is not an array of shape's records, or nil when it is.
local function record_problem(shape, body)
  local kind = json_type(body)
  if kind ~= "an array" then return "--body", "got " .. kind .. ", not an array" end
  if body[1] == nil then return "--body", "got an empty array" end
  for i, item in ipairs(body) do
    local at = "--body[" .. i .. "]"
    kind = json_type(item)
    if kind ~= "an object" then return at, "got " .. kind .. ", not an object" end
    local unexpected = {}
    for key in pairs(item) do
      if key ~= shape.name and key ~= shape.value then unexpected[#unexpected + 1] = key end
    end
    table.sort(unexpected)
    if unexpected[1] then return at, 'unexpected key "' .. unexpected[1] .. '"' end
    for _, key in ipairs { shape.name, shape.value } do
      if item[key] == nil then return at, 'missing "' .. key .. '"' end
    end
    local name, value = item[shape.name], item[shape.value]
    if type(name) ~= "string" then
      return at .. "." .. shape.name, "got " .. json_type(name) .. ", not a string"
    end
    if name == "" then return at .. "." .. shape.name, "is an empty string" end
    if name:find("%c") then return at .. "." .. shape.name, '"' .. name .. '" holds a control character' end
    if shape.value_type and type(value) ~= shape.value_type then
      return at .. "." .. shape.value, "got " .. json_type(value) .. ", not a " .. shape.value_type
    end
  end
end

--- Says message on stderr as a usage error; returns its exit code.
local function usage(ctx, message)
  ctx.stderr:write("soracom-groups: ", one_line(message), "\n")
  return USAGE
end
raw.usage = usage

-- The flags that name something: a control character in a name is a typing accident
-- (a pasted newline), so it is refused before anything is sent.
local NAME_FLAGS = { "group_id", "namespace", "name", "tag_name", "last_evaluated_key", "sim_id", "imsi" }

-- Why one of args' names is refused, or nil.
local function bad_name(args)
  for _, field in ipairs(NAME_FLAGS) do
    local value = args[field]
    if type(value) == "string" and value:find("%c") then
      return "--" .. field:gsub("_", "-") .. ': "' .. value .. '" holds a control character'
    end
  end
end

local function failed(ctx, err)
  ctx.stderr:write(tostring(err), "\n")
  return FAILED
end

-- The flag behind each argument name the library's messages use.
local FLAG_OF = {
  group_id = "--group-id", namespace = "--namespace", name = "--name", tag_name = "--tag-name",
  params = "--body", tags = "--body", configuration = "--body", sim_id = "--sim-id", imsi = "--imsi",
}
local BODY_METHODS = { create_group = true, put_config = true, put_tags = true }

-- A bad argument the library raised for, led by the flag it came from: the library
-- names its Lua arguments ("put_tags: tags must be ..."), the user typed flags.
local function bad_argument(method, message)
  local text = strip_position(message):gsub("^soracom%.groups: ", "")
  local words = text:gsub("^" .. method .. ": ", "")
  local subject = words:match("^[%w_]+")
  local flag = FLAG_OF[subject]
  if subject == "option" then
    flag = "--" .. words:match("^option ([%w_]+)"):gsub("_", "-")
  elseif BODY_METHODS[method] and flag ~= "--group-id" and flag ~= "--namespace" then
    flag = "--body"
  end
  return (flag and flag .. ": " or "") .. text
end

--- Calls client[method](client, ...). A raise is a bad argument (usage error); nil, err
-- a runtime failure. Returns the value (and its second result, a list's next key) or
-- nil, exit code.
local function invoke(ctx, method, ...)
  local client, why, code = ctx.client()
  if client == nil then
    ctx.stderr:write(code == USAGE and "soracom-groups: " or "", one_line(why), "\n")
    return nil, code
  end
  local ok, value, extra = pcall(client[method], client, ...)
  if not ok then return nil, usage(ctx, bad_argument(method, value)) end
  if value == nil then return nil, failed(ctx, extra) end
  return value, extra
end
raw.invoke = invoke

-- One page, or every page as it arrives with --fetch-all.
-- lead: the path arguments before the options ({} or { group_id }).
local function list(ctx, args, method, iterator, lead)
  local query = {
    tag_name = args.tag_name, tag_value = args.tag_value,
    tag_value_match_mode = args.tag_value_match_mode,
    limit = args.limit, last_evaluated_key = args.last_evaluated_key,
  }
  if not args.fetch_all then
    local items, code_or_key = invoke(ctx, method, lead[1] or query, lead[1] and query)
    if items == nil then return code_or_key end
    local printed, why = output.print(ctx.stdout, items, args.jsonl, args.raw_output)
    if not printed then return failed(ctx, "soracom-groups: " .. why) end
    if code_or_key then
      ctx.stderr:write("soracom-groups: more items follow: --last-evaluated-key ", code_or_key, "\n")
    end
    return OK
  end
  local each, code = invoke(ctx, iterator, lead[1] or query, lead[1] and query)
  if each == nil then return code end
  local printer = output.list(ctx.stdout, args.jsonl, args.raw_output)
  while true do
    local ok, item = pcall(each)
    if not ok then
      if not Error.is(item) then error(item, 0) end
      ctx.stderr:write(tostring(item), "\n")
      if item.resume_key then
        ctx.stderr:write("soracom-groups: resume with --last-evaluated-key ", item.resume_key, "\n")
      end
      return FAILED
    end
    if item == nil then break end
    local printed, why = printer.item(item)
    if not printed then return failed(ctx, "soracom-groups: " .. why) end
  end
  local printed, why = printer.finish()
  if not printed then return failed(ctx, "soracom-groups: " .. why) end
  return OK
end

--- Prints what a call returned (compact with args.jsonl or args.raw_output); DELETEs return true and
-- print nothing, as soracom-cli. Returns the exit code.
local function call(ctx, args, method, ...)
  local value, code = invoke(ctx, method, ...)
  if value == nil then return code end
  if value == true then return OK end
  local printed, why = output.print(ctx.stdout, value, args.jsonl, args.raw_output)
  if not printed then return failed(ctx, "soracom-groups: " .. why) end
  return OK
end
raw.call = call

-- params: the path arguments; the body follows them. The body is checked before the
-- client is made: a refused body sends nothing, not even a login.
local function with_body(ctx, args, method, params)
  local body, why = read_body(args.body, ctx.stdin)
  if body == nil then return usage(ctx, why) end
  local shape = RECORD_SHAPES[method]
  if shape then
    local at, problem = record_problem(shape, body)
    if at then return usage(ctx, at .. ": " .. problem .. "; expected " .. shape.example) end
  end
  local all = { unpack(params) }
  all[#params + 1] = body
  return call(ctx, args, method, unpack(all, 1, #params + 1))
end

local MAX_INTEGER = 2 ^ 31 - 1 -- the library's bound for a limit

--- An argparse convert function for flag: a whole number from 1 to max (the
-- library's bound for a limit by default).
local function positive_integer(flag, max)
  max = max or MAX_INTEGER
  return function(text)
    local n = tonumber(text)
    -- n % 1 ~= 0 also refuses nan and inf
    if n == nil or n < 1 or n % 1 ~= 0 or n > max then
      return nil, flag .. " expects a whole number from 1 to " .. string.format("%d", max)
        .. " (got '" .. text .. "')"
    end
    return math.floor(n)
  end
end
raw.positive_integer = positive_integer

--- Flags shared by several subcommands: name -> function(command) adding it.
local FLAGS = {
  group_id = function(c) c:option("--group-id", "Group ID."):count(1) end,
  namespace = function(c)
    c:option("--namespace", "Configuration namespace (SoracomAir, SoracomBeam, ... or a builder name: air, beam, ...).")
      :count(1)
  end,
  body = function(c, what) c:option("--body", what .. " as JSON text, @FILE or - (stdin)."):count(1) end,
  tags = function(c)
    c:option("--tag-name", "Tag name to filter groups by.")
    c:option("--tag-value", "Tag value to filter groups by (with --tag-name).")
    c:option("--tag-value-match-mode", "How --tag-value matches: exact or prefix."):choices { "exact", "prefix" }
  end,
  pages = function(c, what)
    c:option("--limit", "Maximum number of " .. what .. " per page."):convert(positive_integer("--limit"))
    c:option("--last-evaluated-key", "Start after this key (the resume key of an earlier run).")
    c:flag("--fetch-all", "Fetch every page; items are printed as each page arrives.")
  end,
}

local function jsonl(c)
  c:flag("--jsonl", "Print one compact JSON object per line.")
end
FLAGS.jsonl = jsonl
raw.FLAGS = FLAGS

-- The subcommands: soracom-cli's names, their flags, the method they call.
local COMMANDS = {
  { name = "list", summary = "List groups (GET /groups).",
    example = "soracom-groups list --tag-name env --tag-value prod --fetch-all --jsonl",
    flags = function(c) FLAGS.tags(c) FLAGS.pages(c, "groups") jsonl(c) end,
    run = function(args, ctx) return list(ctx, args, "list_groups", "groups", {}) end },
  { name = "get", summary = "Show a group (GET /groups/{group_id}).",
    example = "soracom-groups get --group-id 0b4f2077-0000-4000-8000-000000000000",
    flags = function(c) FLAGS.group_id(c) end,
    run = function(args, ctx) return call(ctx, args, "get_group", args.group_id) end },
  { name = "create", summary = "Create a group (POST /groups).",
    example = [[soracom-groups create --body '{"tags":{"name":"sensors-tokyo"}}']],
    flags = function(c) FLAGS.body(c, "The group: {\"tags\": {...}, \"configuration\": {...}}") end,
    run = function(args, ctx) return with_body(ctx, args, "create_group", {}) end },
  { name = "delete", summary = "Delete a group (DELETE /groups/{group_id}).",
    example = "soracom-groups delete --group-id 0b4f2077-0000-4000-8000-000000000000",
    flags = function(c) FLAGS.group_id(c) end,
    run = function(args, ctx) return call(ctx, args, "delete_group", args.group_id) end },
  { name = "put-config", summary = "Add or change parameters of a namespace "
      .. "(PUT /groups/{group_id}/configuration/{namespace}).",
    example = [[soracom-groups put-config --group-id ID --namespace SoracomAir ]]
      .. [[--body '[{"key":"useCustomDns","value":true}]']],
    flags = function(c)
      FLAGS.group_id(c) FLAGS.namespace(c) FLAGS.body(c, "The parameters: [{\"key\": ..., \"value\": ...}]")
    end,
    run = function(args, ctx)
      return with_body(ctx, args, "put_config", { args.group_id, args.namespace })
    end },
  { name = "delete-config", summary = "Delete one parameter of a namespace "
      .. "(DELETE /groups/{group_id}/configuration/{namespace}/{name}).",
    example = "soracom-groups delete-config --group-id ID --namespace SoracomAir --name useCustomDns",
    flags = function(c)
      FLAGS.group_id(c) FLAGS.namespace(c) c:option("--name", "Parameter name."):count(1)
    end,
    run = function(args, ctx)
      return call(ctx, args, "delete_config", args.group_id, args.namespace, args.name)
    end },
  { name = "delete-config-namespace", summary = "Delete a whole namespace "
      .. "(DELETE /groups/{group_id}/configuration/{namespace}).",
    example = "soracom-groups delete-config-namespace --group-id ID --namespace SoracomAir",
    flags = function(c) FLAGS.group_id(c) FLAGS.namespace(c) end,
    run = function(args, ctx)
      return call(ctx, args, "delete_config_namespace", args.group_id, args.namespace)
    end },
  { name = "list-subscribers", summary = "List the SIMs in a group (GET /groups/{group_id}/subscribers).",
    example = "soracom-groups list-subscribers --group-id ID --fetch-all --jsonl",
    flags = function(c) FLAGS.group_id(c) FLAGS.pages(c, "SIMs") jsonl(c) end,
    run = function(args, ctx)
      return list(ctx, args, "list_subscribers", "subscribers", { args.group_id })
    end },
  { name = "put-tags", summary = "Add or change tags (PUT /groups/{group_id}/tags).",
    example = [[soracom-groups put-tags --group-id ID --body '[{"tagName":"env","tagValue":"prod"}]']],
    flags = function(c)
      FLAGS.group_id(c) FLAGS.body(c, "The tags: [{\"tagName\": ..., \"tagValue\": ...}]")
    end,
    run = function(args, ctx) return with_body(ctx, args, "put_tags", { args.group_id }) end },
  { name = "delete-tag", summary = "Delete a tag (DELETE /groups/{group_id}/tags/{tag_name}).",
    example = "soracom-groups delete-tag --group-id ID --tag-name env",
    flags = function(c) FLAGS.group_id(c) c:option("--tag-name", "Tag name."):count(1) end,
    run = function(args, ctx) return call(ctx, args, "delete_tag", args.group_id, args.tag_name) end },
}

--- Adds a subcommand described as those of COMMANDS ({name, summary, example, flags,
-- run}, and optionally a description, longer than the summary its parent's help
-- shows, and notes, shown before the example) to parser, the command's or one that
-- groups subcommands; returns its handler(args, ctx) -> exit code, which refuses a
-- control character in a name before running it.
function raw.add_command(parser, command)
  local c = parser:command(command.name, command.description or command.summary)
    :summary(command.summary)
    :epilog((command.notes and command.notes .. "\n" or "") .. "Example:\n  " .. command.example)
  command.flags(c)
  return function(args, ctx)
    local why = bad_name(args)
    if why then return usage(ctx, why) end
    return command.run(args, ctx)
  end
end

--- Adds the subcommands to parser; returns name -> handler(args, ctx) -> exit code.
function raw.add_commands(parser)
  local handlers = {}
  for _, command in ipairs(COMMANDS) do
    handlers[command.name] = raw.add_command(parser, command)
  end
  return handlers
end

return raw
