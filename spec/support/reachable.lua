-- Every string reachable from a value by plain field access: the keys and values of
-- its tables, their metatables' too, recursively (functions' upvalues and userdata
-- contents are not fields). For the specs that check no secret sits in a public object.
return function(root)
  local strings, seen = {}, {}
  local function walk(value)
    local kind = type(value)
    if kind == "string" then
      strings[#strings + 1] = value
    elseif kind == "table" and not seen[value] then
      seen[value] = true
      for key, field in next, value do
        walk(key)
        walk(field)
      end
      walk(getmetatable(value))
    end
  end
  walk(root)
  return strings
end
