std = "max"
exclude_files = { "build", "build.luarocks" }
files["spec"] = { std = "+busted" }
files["spec/fake"] = { std = "ngx_lua" }
