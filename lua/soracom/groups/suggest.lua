--- The closest valid name to a wrong one, for messages that list the valid names
-- (namespaces, options, builder fields): one rule everywhere.
-- @local

local suggest = {}

-- Optimal string alignment distance: insertions, deletions, substitutions and swaps of
-- two neighbouring characters ("tpc" -> "tcp") each count 1. (Written here: no library
-- at hand has it, and the inputs are short names.)
function suggest.distance(a, b)
  local before, previous = {}, {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current, byte = { [0] = i }, a:byte(i)
    for j = 1, #b do
      local cost = byte == b:byte(j) and 0 or 1
      local best = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
      if i > 1 and j > 1 and byte == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        best = math.min(best, before[j - 2] + 1)
      end
      current[j] = best
    end
    before, previous = previous, current
  end
  return previous[#b]
end

-- The most edits a name of `length` characters may be away from the one suggested:
-- a third of its length, at most 2 (a short name is close to too many others).
local function allowed_edits(length)
  return math.min(2, math.floor(length / 3))
end

--- suggest.closest(name, candidates[, min_length]): the candidate `name` is most likely
-- a mistyping of, or nil when none is close. A candidate equal to name but for case wins;
-- else the fewest edits (case ignored), within a third of name's length and at most 2,
-- the earlier candidate on a tie. With min_length, a candidate or name shorter than it
-- is suggested for a difference of case alone.
-- @tparam any name what was given (anything but a string gets no suggestion)
-- @tparam {string,...} candidates the valid names, in the order to prefer on a tie
-- @treturn string|nil
function suggest.closest(name, candidates, min_length)
  if type(name) ~= "string" or name == "" then return nil end
  local lower = name:lower()
  for _, candidate in ipairs(candidates) do
    if candidate ~= name and candidate:lower() == lower then return candidate end
  end
  min_length = min_length or 0
  if #name < min_length then return nil end
  local best, best_distance = nil, allowed_edits(#name) + 1
  for _, candidate in ipairs(candidates) do
    -- (no distance is less than the lengths' difference: skip those that cannot win)
    if candidate ~= name and #candidate >= min_length and math.abs(#candidate - #name) < best_distance then
      local distance = suggest.distance(lower, candidate:lower())
      if distance < best_distance then best, best_distance = candidate, distance end
    end
  end
  return best
end

--- suggest.hint(name, candidates[, describe]): "; did you mean "x"?" for the closest
-- candidate (describe(x), when given, adds words after it: ` (SoracomAir)`), or "" when
-- none is close. Messages that list the valid names end with it.
-- @treturn string
function suggest.hint(name, candidates, describe)
  local closest = suggest.closest(name, candidates)
  if closest == nil then return "" end
  local more = describe and describe(closest) or nil
  return "; did you mean " .. string.format("%q", closest) .. (more and (" (" .. more .. ")") or "") .. "?"
end

return suggest
