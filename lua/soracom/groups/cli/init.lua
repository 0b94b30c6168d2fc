--- The soracom-groups command: the parser, the global flags, dispatch.
-- Each module in COMMANDS adds its subcommands to the parser and returns their
-- handlers (name -> handler(args, ctx) -> exit code), so others can plug in, and
-- optionally, second, the exit code of a usage error for some of them (name -> code;
-- cli.USAGE for the others).
--
-- Exit codes: 0 ok, 1 API or network error, 2 usage error (soracom-cli's); export,
-- plan and apply give 1 for every error, as terraform's -detailed-exitcode, whose 2
-- means "changes to make".

local argparse = require "argparse"
local redis_link = require "soracom.groups.redis_link"

local cli = {}

local COMMANDS = { "soracom.groups.cli.raw", "soracom.groups.cli.sims", "soracom.groups.cli.declarative" }

cli.OK, cli.FAILED, cli.USAGE = 0, 1, 2

-- The environment variable that gives the Redis URL when --redis does not.
cli.REDIS_VARIABLE = "SORACOM_GROUPS_REDIS"

-- A message raised by the library names the caller's file and line first; the user
-- only needs the words.
function cli.strip_position(message)
  return (tostring(message):gsub("^[^\n:]+:%d+: ", ""))
end

local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function escape(character)
  return ESCAPES[character] or string.format("\\%03d", character:byte())
end

-- A message on one line, whatever the value it quotes: each control character is
-- written as an escape (%q's backslash-newline too).
function cli.one_line(message)
  return (tostring(message):gsub("\\\n", "\\n"):gsub("%c", escape))
end

-- Whether file descriptor fd is a terminal (the shell's test -t: Lua has no isatty).
-- No redirection: it would replace the descriptor asked about (test prints nothing).
function cli.is_terminal(fd)
  local status = os.execute("test -t " .. fd)
  return status == true or status == 0 -- 5.2+ give true; 5.1 and LuaJIT 0
end

-- The global options that take a value: a word after one is its value, not a subcommand.
local GLOBAL_OPTIONS = {}

local function global_option(parser, name, description)
  GLOBAL_OPTIONS[name] = true
  return parser:option(name, description)
end

local function global_flags(parser)
  global_option(parser, "--profile", "Profile name (~/.soracom/PROFILE.json), as soracom-cli.")
  global_option(parser, "--profile-command", "A command (run by sh) printing the profile's JSON, as soracom-cli's: "
    .. "credentials from a password manager. Neither its output nor its messages are ever shown.")
    :argname("<command>")
  parser:flag("--raw-output", "Print each API response as compact JSON without a final newline, as "
    .. "soracom-cli's --raw-output (--fetch-all: one array); --jsonl then does not apply.")
  global_option(parser, "--coverage-type", "Coverage: jp (Japan) or g (global).")
    :choices { "jp", "g" }
  global_option(parser, "--api-key", "API key (with --api-token).")
  global_option(parser, "--api-token", "API token (with --api-key).")
  global_option(parser, "--auth-key-id", "AuthKey ID (with --auth-key).")
  global_option(parser, "--auth-key", "AuthKey secret (with --auth-key-id).")
  parser:flag("--no-retry-on-error", "Do not retry a failed request.")
  global_option(parser, "--endpoint", "API endpoint URL (e.g. https://api.soracom.io); overrides coverage.")
  global_option(parser, "--timeout", "Seconds a whole request may take.")
    :convert(function(text)
      local n = tonumber(text)
      -- n ~= n: Lua 5.1 and LuaJIT read "nan"
      if n == nil or n ~= n or n <= 0 or n == math.huge then
        return nil, "--timeout expects a positive number of seconds (got '" .. text .. "')"
      end
      return n
    end)
  parser:flag("--debug", "Print the library's debug lines (requests, retries; never a secret) on stderr.")
  parser:flag("--no-token-cache", "Log in afresh: do not read or write the token kept between runs "
    .. "($XDG_CACHE_HOME/soracom-groups/).")
  global_option(parser, "--redis", "Share the token and the rate-limit budget with every process using this "
    .. "Redis: redis://[[user]:password@]host[:port][/db] (else $" .. cli.REDIS_VARIABLE .. "; prefer the "
    .. "variable for a password: ps shows command lines). No token cache then.")
    :argname("<url>")
  global_option(parser, "--on-redis-error", "When Redis fails: local (default) goes on with this process's own "
    .. "budget and login, fail makes requests fail.")
    :choices { "local", "fail" }
end

local function build_parser()
  local parser = argparse("soracom-groups", "Manage Soracom groups: soracom-cli's `groups` commands, streamed.")
    :command_target("command")
    :require_command(true)
    :epilog("Exit codes: 0 ok, 1 an API or network error, 2 a usage error;\n"
      .. "export, plan and apply: 0 ok, 1 any error (a usage error too),\n"
      .. "2 (plan, apply --dry-run) changes to make.\n"
      .. "Runs on many hosts share one token and one rate-limit budget through Redis:\n"
      .. "--redis redis://:PASSWORD@HOST:6379/0, or " .. cli.REDIS_VARIABLE .. " (--redis wins).\n"
      .. "Example: soracom-groups --coverage-type jp list --fetch-all --jsonl")
  global_flags(parser)
  local handlers, usage_codes = {}, {}
  for _, name in ipairs(COMMANDS) do
    local module_handlers, module_usage_codes = require(name).add_commands(parser)
    for command, handler in pairs(module_handlers) do
      handlers[command] = handler
    end
    for command, code in pairs(module_usage_codes or {}) do
      usage_codes[command] = code
    end
  end
  return parser, handlers, usage_codes
end

--- The Redis URL the command uses and where it came from ("--redis" or the variable's
-- name), or nil: --redis wins; an empty variable counts as unset.
function cli.redis_url(args, getenv)
  if args.redis then return args.redis, "--redis" end
  local url = (getenv or os.getenv)(cli.REDIS_VARIABLE)
  if url ~= nil and url ~= "" then return url, cli.REDIS_VARIABLE end
end

-- Why the Redis flags cannot be used, or nil. The words never quote the URL: it may
-- hold a password.
local function redis_problem(args)
  local url, source = cli.redis_url(args)
  if url == nil then
    if args.on_redis_error then return "--on-redis-error needs --redis (or " .. cli.REDIS_VARIABLE .. ")" end
    return nil
  end
  if url:match("^rediss://") then -- the library's way, a command function, is Lua's alone
    return source .. ": rediss:// (TLS) is not built in: the command speaks redis:// (a TLS tunnel, "
      .. "stunnel or spiped, can carry it)"
  end
  local target, why = redis_link.parse_url(url)
  if target == nil then return source .. ": " .. why end
end

-- The groups.new options of the global flags: the library resolves the rest
-- (SORACOM_* variables, profiles) exactly as it does for Lua callers.
function cli.client_options(args, stderr)
  local redis = cli.redis_url(args)
  local options = {
    profile = args.profile, profile_command = args.profile_command, coverage = args.coverage_type,
    api_key = args.api_key, token = args.api_token,
    auth_key_id = args.auth_key_id, auth_key = args.auth_key,
    endpoint = args.endpoint, timeout = args.timeout,
    redis = redis, on_redis_error = args.on_redis_error,
    -- the next run reuses the token: a loop of commands logs in once (see the README);
    -- with Redis the token is kept there (groups.new refuses both)
    token_cache = not args.no_token_cache and redis == nil,
  }
  if args.no_retry_on_error then options.retries = 0 end
  if args.debug then
    options.debug = function(line) stderr:write(line, "\n") stderr:flush() end
    if redis and not args.no_token_cache then
      options.debug("soracom-groups: the token cache is not used: Redis keeps the token for every process that uses it")
    end
  end
  return options
end

local function context(args, io_streams)
  local ctx = { stdout = io_streams.stdout, stderr = io_streams.stderr, stdin = io_streams.stdin }
  -- Whether a progress line may be drawn on stderr: told by main's caller, else asked
  -- of the process's own stderr (a stream of the caller's is no terminal).
  function ctx.stderr_is_terminal()
    if io_streams.stderr_is_terminal ~= nil then return io_streams.stderr_is_terminal end
    return io_streams.stderr == io.stderr and cli.is_terminal(2)
  end
  local client, failure
  -- Made on first use: --help and usage errors never read a profile.
  function ctx.client()
    if client == nil and failure == nil then
      local groups = require "soracom.groups"
      local ok, made, err = pcall(groups.new, cli.client_options(args, ctx.stderr))
      if not ok then
        failure = { code = cli.USAGE, message = cli.strip_position(made) }
      elseif made == nil then
        failure = { code = cli.FAILED, message = tostring(err) }
      else
        client = made
      end
    end
    if client then return client end
    return nil, failure.message, failure.code
  end
  function ctx.close()
    if client then client:close() end
  end
  return ctx
end

-- The subcommand named on the command line, when a parse error leaves only the words:
-- the first word that is neither a global flag nor a global option's value.
local function command_in(handlers, argv)
  local i = 1
  while i <= #argv do
    local word = argv[i]
    if word == "--" then
      word = argv[i + 1]
      return handlers[word] and word or nil
    elseif word:sub(1, 1) ~= "-" then
      return handlers[word] and word or nil
    end
    i = i + (GLOBAL_OPTIONS[word] and 2 or 1)
  end
end

--- main(argv, streams) -> exit code. streams (stdout, stderr, stdin) default to io's;
-- streams.stderr_is_terminal (a boolean) says whether stderr is a terminal, instead
-- of asking.
function cli.main(argv, streams)
  streams = streams or {}
  local io_streams = {
    stdout = streams.stdout or io.stdout, stderr = streams.stderr or io.stderr,
    stdin = streams.stdin or io.stdin, stderr_is_terminal = streams.stderr_is_terminal,
  }
  local list = {}
  for i = 1, #(argv or {}) do list[i] = argv[i] end
  local parser, handlers, usage_codes = build_parser()
  local ok, args = parser:pparse(list)
  if not ok then
    local command = command_in(handlers, list)
    -- argparse's "Did you mean ...?" keeps its own line
    local message = cli.one_line(args):gsub("\\nDid you mean", "\nDid you mean")
    io_streams.stderr:write("soracom-groups: ", message, "\nTry 'soracom-groups ",
      command and command .. " " or "", "--help'.\n")
    return usage_codes[command] or cli.USAGE
  end
  local problem = redis_problem(args)
  if problem then
    io_streams.stderr:write("soracom-groups: ", cli.one_line(problem), "\nTry 'soracom-groups --help'.\n")
    return usage_codes[args.command] or cli.USAGE
  end
  local ctx = context(args, io_streams)
  local code = handlers[args.command](args, ctx)
  ctx.close()
  return code
end

return cli
