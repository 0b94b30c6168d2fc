-- Scratch folders and files for specs (profiles with chosen permissions).
local tempdir = {}

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function tempdir.new()
  local pipe = assert(io.popen('mktemp -d "${TMPDIR:-/tmp}/soracom-spec.XXXXXX"'))
  local path = pipe:read("*l")
  pipe:close()
  assert(path and path ~= "", "mktemp -d failed")
  return path
end

function tempdir.write(path, text, mode)
  local file = assert(io.open(path, "wb"))
  file:write(text)
  file:close()
  assert(os.execute("chmod " .. (mode or "600") .. " " .. quote(path)))
end

function tempdir.remove(path)
  os.execute("rm -rf " .. quote(path))
end

return tempdir
