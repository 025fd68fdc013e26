package packages

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// noDefaultACL reports whether the directory at root-relative dir surely
// has no default ACL, which would give the directories made below it
// other modes than the ones asked for. Any doubt is false.
func noDefaultACL(root *os.Root, dir string) bool {
	f, err := root.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = unix.Fgetxattr(int(f.Fd()), "system.posix_acl_default", nil)
	return errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP)
}
