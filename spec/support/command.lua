-- Runs bin/soracom-groups as a subprocess, with the interpreter running busted:
--   local command = require "spec.support.command"
--   local code, stdout, stderr = command.run({ "plan", "file.json" }, { stdin = "yes\n" })
-- opts.env is a shell prefix ("HOME=/x"); opts.prefix words go before args (global flags).
local command = {}

command.LUA = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")

-- Shell text around a run of the command: a token cache of its own, removed after it,
-- so that no run reuses another's token and nothing is written under the user's
-- ~/.cache (opts.env may still name another folder). OWN_CACHE goes first; after the
-- command, "; code=$?" .. DROP_CACHE .. "; echo $code".
command.OWN_CACHE = 'export XDG_CACHE_HOME="$(mktemp -d "${TMPDIR:-/tmp}/soracom-cache.XXXXXX")"; '
command.DROP_CACHE = '; rm -rf "$XDG_CACHE_HOME"'

function command.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- What a shell command line printed on stdout.
function command.output(line)
  local pipe = assert(io.popen(line))
  local text = pipe:read("*a")
  pipe:close()
  return text
end

function command.slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

function command.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Runs the command to its end: exit code, stdout, stderr.
function command.run(args, opts)
  opts = opts or {}
  local words = {}
  for _, word in ipairs(opts.prefix or {}) do words[#words + 1] = command.quote(word) end
  for _, word in ipairs(args) do words[#words + 1] = command.quote(word) end
  local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
  command.write_file(input, opts.stdin or "")
  local line = command.OWN_CACHE .. (opts.env or "") .. " " .. command.LUA .. " bin/soracom-groups "
    .. table.concat(words, " ") .. " <" .. command.quote(input) .. " >" .. command.quote(out) .. " 2>"
    .. command.quote(err) .. "; code=$?" .. command.DROP_CACHE .. "; echo $code"
  local pipe = assert(io.popen(line))
  local code = tonumber(pipe:read("*a"):match("(%d+)%s*$"))
  pipe:close()
  local stdout, stderr = command.slurp(out), command.slurp(err)
  os.remove(out) os.remove(err) os.remove(input)
  return code, stdout, stderr
end

--- Runs the command against a fake server `srv` with its static credentials first.
function command.against(srv, args, opts)
  opts = opts or {}
  opts.prefix = { "--endpoint", srv.endpoint, "--api-key", srv.api_key, "--api-token", srv.token }
  return command.run(args, opts)
end

return command
