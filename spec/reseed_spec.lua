-- Retry jitter differs between nginx workers (issue 9, item 4): the master requires
-- the core in init_by_lua, which seeds the generator, and forks the workers; each
-- must draw its own sequence, not a copy of the master's. Runs a real nginx with
-- spec/reseed/nginx.conf.in and the LuaJIT build of the core (scripts/build jit).
local NGINX = os.getenv("NGINX") or "/usr/sbin/nginx"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1; echo \"exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local text, status = out:match("^(.-)exit=(%d+)%s*$")
  return text or out, status == "0"
end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read("*a")
  file:close()
  return text
end

local function sleep(seconds) run("sleep " .. seconds) end

describe("core.random in nginx workers", function()
  local state_dir, conf

  local function stop()
    local pid = read_file(state_dir .. "/nginx.pid")
    pid = pid and pid:match("%d+")
    if not pid then return end
    run("kill -QUIT " .. pid)
    for _ = 1, 100 do
      local _, alive = run("kill -0 " .. pid)
      if not alive then return end
      sleep(0.05)
    end
  end

  after_each(function()
    if state_dir then
      stop()
      run("rm -rf " .. quote(state_dir))
      state_dir = nil
    end
  end)

  it("gives each forked worker its own sequence", function()
    local root = (run("pwd")):match("^%s*(.-)%s*$")
    assert.is_not_nil(read_file(root .. "/build/jit/soracom/groups/core.so"),
      "build/jit is missing: run scripts/build jit")
    state_dir = (run('mktemp -d "${TMPDIR:-/tmp}/soracom-reseed.XXXXXX"')):match("^%s*(.-)%s*$")
    assert(select(2, run("mkdir -p " .. quote(state_dir .. "/logs") .. " " .. quote(state_dir .. "/temp")
      .. " " .. quote(state_dir .. "/out"))))
    local template = assert(read_file(root .. "/spec/reseed/nginx.conf.in"))
    local text = template:gsub("@([%u_]+)@", { STATE_DIR = state_dir, ROOT = root })
    conf = state_dir .. "/nginx.conf"
    local file = assert(io.open(conf, "wb"))
    file:write(text)
    file:close()
    -- As root the workers would run as "nobody" and could not write the state dir.
    local user = (run("id -u")):match("^%s*0%s*$") and " -g 'user root root;'" or ""
    local output, started = run(quote(NGINX) .. " -p " .. quote(state_dir) .. " -c " .. quote(conf)
      .. " -e " .. quote(state_dir .. "/logs/error.log") .. user)
    assert(started, "nginx did not start: " .. output)

    local workers
    for _ = 1, 100 do
      local list = run("ls " .. quote(state_dir .. "/out"))
      workers = {}
      for name in list:gmatch("[^\n]+") do -- not worker-<pid>.tmp, still being written
        if name:match("^worker%-%d+$") then workers[#workers + 1] = name end
      end
      if #workers >= 2 then break end
      sleep(0.05)
    end
    assert.are.equal(2, #workers, "workers reporting; error log:\n" ..
      tostring(read_file(state_dir .. "/logs/error.log")))

    local master = assert(read_file(state_dir .. "/out/master"))
    local first = assert(read_file(state_dir .. "/out/" .. workers[1]))
    local second = assert(read_file(state_dir .. "/out/" .. workers[2]))
    for _, values in ipairs({ master, first, second }) do
      local count = 0
      for v in values:gmatch("%S+") do
        count = count + 1
        local n = tonumber(v)
        assert.is_true(n >= 0 and n < 1, v)
      end
      assert.are.equal(4, count)
    end
    assert.are_not.equal(first, second)
  end)
end)
