--- Lazy iteration over every page of a paginated list: one request per page, made
-- only when the loop needs the next item, so a loop that breaks early sends no more.
--
-- A page that cannot be fetched raises its error object (the same table a method
-- returns as `err`) out of the for loop: it cannot be silently mistaken for the end
-- of the list. Its `resume_key` field holds the last_evaluated_key to start again
-- from, so a caller that catches it with pcall loses nothing.

local Error = require "soracom.groups.error"

local iterate = {}

--- fetch(query) -> items, next_key | nil, err; path names the list in errors.
function iterate.pages(op, options, fetch, path)
  local query = {}
  for name, value in pairs(options or {}) do query[name] = value end
  local items, count, index = nil, 0, 0
  local finished = false
  -- Every key seen, so that pages that come round again (A, B, A...) end the loop
  -- with an error instead of running forever. One short string per page.
  local seen_keys = {}
  if query.last_evaluated_key then seen_keys[query.last_evaluated_key] = true end

  return function()
    index = index + 1
    while index > count do
      if finished then return nil end
      local requested_key = query.last_evaluated_key
      local page, next_key = fetch(query)
      if page == nil then
        local err = next_key
        err.resume_key = requested_key
        error(err, 0)
      end
      if next_key ~= nil then
        if seen_keys[next_key] then
          local err = Error.wrap({ kind = "decode", message = "the server sent the page key " .. next_key
            .. " again: its pages go round in a loop" }, op.method, path)
          err.resume_key = requested_key
          error(err, 0)
        end
        seen_keys[next_key] = true
      end
      items, count, index = page, #page, 1
      query.last_evaluated_key = next_key
      finished = next_key == nil
    end
    return items[index]
  end
end

return iterate
