-- Put hello on PATH. os.copy overwrites and keeps the mode, so running this
-- twice (as crash recovery may) leaves the same result.
local ok, err = os.copy(path_join(data_dir, "bin/hello"), path_join(packets_bin_dir, "hello"))
if not ok then error("install hello: " .. tostring(err)) end
