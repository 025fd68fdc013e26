-- Write the message from the state file's options into the package dir.
-- Writing the whole file each time keeps the hook idempotent.
local message = options.message or "Welcome."
local f, err = io.open(path_join(packets_package_dir, "motd.txt"), "w")
if not f then error("write motd.txt: " .. tostring(err)) end
f:write(message, "\n")
f:close()
