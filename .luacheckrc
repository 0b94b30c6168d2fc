std = "max"
-- types/ holds lua-language-server definitions (---@meta): empty function bodies with
-- unused parameters by design, never run; spec/types_spec.lua checks them instead.
exclude_files = { "build", "build.luarocks", "types" }
files["spec"] = { std = "+busted" }
files["spec/fake"] = { std = "ngx_lua" }
