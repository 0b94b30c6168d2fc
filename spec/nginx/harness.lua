-- Starts the spec nginx (spec/nginx/nginx.conf.in) that runs soracom.groups inside
-- ngx_lua, and talks to it with luasocket. Works from busted on any Lua (nginx runs its
-- own LuaJIT, with the core built by `scripts/build jit`).
--
--   local harness = require "spec.nginx.harness"
--   local nginx = harness.start(srv)   -- srv: a fake from spec.support.fake_server,
--                                      -- started with { tls = true }
--   nginx:call{ options = {...}, calls = {...} }  --> decoded answer of POST /call
--   nginx:get("/init")                 --> status, body
--   nginx:burst("/get?id=1", 40)       --> the 40 decoded answers of concurrent GETs
--   nginx:stop()                       -- waits for nginx to exit; safe twice
--   srv, nginx = harness.start_with_fake({ tls = true }, template, prepare, extra)
--   harness.stop_both(srv, nginx)      -- in teardown
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local core = require "soracom.groups.core"
local fake_server = require "spec.support.fake_server"

local harness = {}

local NGINX = os.getenv("NGINX") or "/usr/sbin/nginx"
local PORT_MIN, PORT_SPAN = 20000, 12000 -- as spec/fake/ctl: below the ephemeral range

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a shell command; returns its output and whether it exited with 0.
local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1; echo \"exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local text, status = out:match("^(.-)exit=(%d+)%s*$")
  return text or out, status == "0"
end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then return "" end
  local text = file:read("*a")
  file:close()
  return text
end

local function repo_root()
  local source = debug.getinfo(1, "S").source
  local dir = source:match("^@(.*)spec[/\\]nginx[/\\]harness%.lua$")
  if dir == nil or dir == "" then return (run("pwd")):match("^%s*(.-)%s*$") end
  dir = dir:gsub("[/\\]$", "")
  if dir:sub(1, 1) ~= "/" then
    dir = (run("cd " .. quote(dir) .. " && pwd")):match("^%s*(.-)%s*$")
  end
  return dir
end

-- Debian's cjson.so for Lua 5.1 (LuaJIT): its directory's ?.so.
local function lua51_cpath()
  local out = run("ls -d /usr/lib/*/lua/5.1/cjson.so /usr/local/lib/lua/5.1/cjson.so 2>/dev/null")
  local file = out:match("([^\n]+)")
  if not file then error("spec nginx: cjson.so for Lua 5.1 not found (install lua-cjson)", 3) end
  return (file:gsub("cjson%.so$", "?.so"))
end

-- True while the process runs (a zombie does not count, see spec/fake/ctl).
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat == "" then return false end
  local state = stat:match("%) (%a)")
  return state ~= "Z" and state ~= "X"
end

local Nginx = {}
Nginx.__index = Nginx

local function port_in_use(port)
  local probe = socket.tcp()
  probe:settimeout(0.2)
  local ok = probe:connect("127.0.0.1", port)
  probe:close()
  return ok ~= nil
end

--- Starts nginx for the fake server srv (its endpoint and credentials reach Lua
-- through nginx `env`; its CAs through lua_ssl_trusted_certificate). `template` is
-- the configuration's template, spec/nginx/nginx.conf.in unless given (relative to the
-- repository); `extra`, values of @NAME@s of its own ({WORKERS = "2"}).
function harness.start(srv, template_path, extra)
  local root = repo_root()
  local so = root .. "/build/jit/soracom/groups/core.so"
  if read_file(so) == "" then
    error("spec nginx: " .. so .. " is missing: run scripts/build jit", 2)
  end
  local state_dir = (run('mktemp -d "${TMPDIR:-/tmp}/soracom-nginx-spec.XXXXXX"')):match("^%s*(.-)%s*$")
  assert(run("mkdir -p " .. quote(state_dir .. "/logs") .. " " .. quote(state_dir .. "/temp")))
  local template = read_file(root .. "/" .. (template_path or "spec/nginx/nginx.conf.in"))
  local values = {
    STATE_DIR = state_dir, ROOT = root, LUA51_CPATH = lua51_cpath(),
    CA_FILE = srv.ca_file or "/etc/ssl/certs/ca-certificates.crt",
    OTHER_CA_FILE = srv.other_ca_file or "/etc/ssl/certs/ca-certificates.crt",
  }
  for name, value in pairs(extra or {}) do values[name] = tostring(value) end
  local env = table.concat({
    "SORACOM_TEST_ENDPOINT=" .. quote(srv.endpoint),
    "SORACOM_TEST_AUTH_KEY_ID=" .. quote(srv.auth_key_id),
    "SORACOM_TEST_AUTH_KEY=" .. quote(srv.auth_key),
    "SORACOM_TEST_EMAIL=" .. quote(srv.email),
    "SORACOM_TEST_PASSWORD=" .. quote(srv.password),
    "SORACOM_TEST_OPERATOR_ID=" .. quote(srv.operator_id),
    "SORACOM_TEST_USER_NAME=" .. quote(srv.user_name),
    "SORACOM_TEST_SAM_PASSWORD=" .. quote(srv.sam_password),
  }, " ")
  -- As root the workers would run as "nobody" and could not read the state dir.
  local user = (run("id -u")):match("^%s*0%s*$") and " -g 'user root root;'" or ""
  local conf = state_dir .. "/nginx.conf"
  math.randomseed(os.time() + math.floor((socket.gettime() % 1) * 1e6))
  local port, started, output
  for _ = 1, 20 do
    port = PORT_MIN + math.random(0, PORT_SPAN - 1)
    if not port_in_use(port) then
      values.PORT = tostring(port)
      local text = template:gsub("@([%u%d_]+)@", function(name)
        return assert(values[name], "no value for @" .. name .. "@")
      end)
      local file = assert(io.open(conf, "wb"))
      file:write(text)
      file:close()
      output, started = run(env .. " " .. quote(NGINX) .. " -p " .. quote(state_dir) .. " -c " .. quote(conf)
        .. " -e " .. quote(state_dir .. "/logs/error.log") .. user)
      if started or not output:find("Address already in use", 1, true) then break end
    end
  end
  local self = setmetatable({ state_dir = state_dir, port = port,
    url = "http://127.0.0.1:" .. tostring(port), stopped = false }, Nginx)
  if not started then
    self:stop()
    error("spec nginx: nginx failed to start: " .. tostring(output), 2)
  end
  for _ = 1, 100 do
    local ok, status = pcall(self.get, self, "/ping")
    if ok and status == 200 then return self end
    socket.sleep(0.05)
  end
  local log = read_file(state_dir .. "/logs/error.log")
  self:stop()
  error("spec nginx: /ping did not answer; error log:\n" .. log, 2)
end

--- Starts a fake (fake_server.start(fake_options)), lets prepare(srv) seed or set it,
-- then starts nginx for it (template and extra as for start). Returns srv, nginx; when
-- anything fails the fake is stopped again before the error goes on.
function harness.start_with_fake(fake_options, template_path, prepare, extra)
  local srv = fake_server.start(fake_options)
  local ok, nginx = pcall(function()
    if prepare then prepare(srv) end
    return harness.start(srv, template_path, extra)
  end)
  if not ok then
    srv:stop()
    error(nginx, 0)
  end
  return srv, nginx
end

--- Stops what start_with_fake started (either may be nil).
function harness.stop_both(srv, nginx)
  if nginx then nginx:stop() end
  if srv then srv:stop() end
end

--- GET path -> status, body, headers
function Nginx:get(path)
  local chunks = {}
  local ok, status, headers = http.request {
    url = self.url .. path, sink = ltn12.sink.table(chunks),
  }
  if not ok then error("spec nginx: GET " .. path .. " failed: " .. tostring(status), 2) end
  return status, table.concat(chunks), headers
end

--- POST /call (or another location) with a Lua table as JSON; returns the decoded
-- answer (core.decode_json: integers stay integers, null is core.null).
function Nginx:call(request, location)
  local body = core.encode_json(request)
  local chunks = {}
  local ok, status = http.request {
    url = self.url .. (location or "/call"),
    method = "POST",
    headers = { ["Content-Type"] = "application/json", ["Content-Length"] = tostring(#body) },
    source = ltn12.source.string(body),
    sink = ltn12.sink.table(chunks),
  }
  local text = table.concat(chunks)
  if not ok or status ~= 200 then
    error(("spec nginx: POST %s failed: %s %s\n%s"):format(location or "/call", tostring(status),
      text, self:error_log()), 2)
  end
  return assert(core.decode_json(text))
end

--- `count` GETs of `path` (a string, or a function of the request's number giving
-- one), `parallel` (40) at a time, each answer decoded. One curl sends them all
-- (--parallel), so that they start at once however busy the machine is: spawning a
-- curl per request spread a burst over as long as the spawning took, and what a spec
-- counts (logins, answers 429) depended on it.
function Nginx:burst(path, count, parallel)
  local urls = {}
  for i = 1, count do urls[i] = quote(self.url .. (type(path) == "function" and path(i) or path)) end
  local pipe = assert(io.popen("curl -sS --no-progress-meter -m 90 --parallel --parallel-immediate --parallel-max "
    .. (parallel or 40) .. " -w '\\n' " .. table.concat(urls, " ") .. " 2>&1; echo"))
  local answers = {}
  for line in pipe:lines() do
    if line ~= "" then answers[#answers + 1] = assert(core.decode_json(line), "not JSON: " .. line) end
  end
  pipe:close()
  if #answers ~= count then error(("spec nginx: %d answers to a burst of %d"):format(#answers, count), 2) end
  return answers
end

function Nginx:error_log()
  return read_file(self.state_dir .. "/logs/error.log")
end

--- Stops nginx (SIGTERM to the master it started, by its pid) and removes the state
-- directory. Safe twice.
function Nginx:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = read_file(self.state_dir .. "/nginx.pid"):match("%d+")
  if pid then
    run("kill -TERM " .. pid)
    local deadline = socket.gettime() + 5
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.05) end
    if alive(pid) then run("kill -KILL " .. pid) end
  end
  run("rm -rf " .. quote(self.state_dir))
end

return harness
