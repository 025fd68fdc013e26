package packages

import "os"

// SyncPath fsyncs the file or directory at name: for a directory, the
// entries made or renamed in it (the last step of a write through a
// temporary name). It is for the single files packets keeps beside its
// databases and caches; a batch of files is made durable with SyncFS.
func SyncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
