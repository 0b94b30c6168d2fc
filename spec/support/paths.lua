-- Lets every Lua version find the C core it was built for: build/<version>/, where
-- scripts/build puts it (5.1, 5.2, 5.3, 5.4 or jit).
local version = rawget(_G, "jit") and "jit" or _VERSION:match("%d+%.%d+")
package.cpath = "build/" .. version .. "/?.so;" .. package.cpath
