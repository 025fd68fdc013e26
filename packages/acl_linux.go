package packages

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// noDefaultACL reports whether the directory at root-relative dir surely
// has no default ACL, which would give the directories made below it
// other modes than the ones asked for. Any doubt is false: only ENODATA is
// an answer (tmpfs and ext4 give it); EOPNOTSUPP is not, since an NFSv4
// client says so while its server applies inherited ACLs all the same.
func noDefaultACL(root *os.Root, dir string) bool {
	f, err := root.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = unix.Fgetxattr(int(f.Fd()), "system.posix_acl_default", nil)
	return errors.Is(err, unix.ENODATA)
}
