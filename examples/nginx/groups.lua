--- The handler of examples/nginx/nginx.conf: GET /groups lists every group of the
-- account as JSON, {"groups": [{"groupId", "name", "createdTime"}, ...]}.
--
-- One client per worker, made at the first request and kept: its token (it logs in
-- with SORACOM_AUTH_KEY_ID / SORACOM_AUTH_KEY on first use and renews it) and the
-- worker's pool of kept-alive connections serve every later request. The requests
-- go over cosockets (the default transport picks them in this phase), so a slow API
-- never blocks the worker, and retries wait with ngx.sleep.

-- luacheck: globals ngx

local soracom = require "soracom.groups"
local cjson = require "cjson"

local handler = {}

local client -- this worker's

local function get_client()
  if client == nil then
    -- The default transport ("auto") uses cosockets here, in the content phase.
    local made, err = soracom.new { timeout = 10, retries = 2 }
    if made == nil then return nil, err end
    client = made
  end
  return client
end

local function fail(status, err)
  ngx.status = status
  ngx.say(cjson.encode { error = tostring(err) })
  ngx.log(ngx.ERR, tostring(err))
end

function handler.handle()
  local groups_client, err = get_client()
  if groups_client == nil then return fail(500, err) end
  local items = {}
  -- The iterator fetches page after page and raises a page's error object.
  local ok, failure = pcall(function()
    for group in groups_client:groups { limit = 100 } do
      local name = type(group.tags) == "table" and group.tags.name or nil
      items[#items + 1] = cjson.encode { groupId = group.groupId, name = name,
        createdTime = group.createdTime }
    end
  end)
  if not ok then
    return fail(soracom.is_error(failure) and 502 or 500, failure)
  end
  ngx.say('{"groups":[', table.concat(items, ","), "]}")
end

return handler
