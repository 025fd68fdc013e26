package packages

// Available is one build that a repository's signed index offers: its
// manifest and where and how big its archive is. The planner chooses among
// Availables; the fetcher gets the archive by Digest.
type Available struct {
	Manifest
	Repo          string // the repository that offers it; "" is the default repository
	Filename      string // the archive's path on the mirror, relative to the repository root ("packages/htop-3.3.0.tar.zst")
	Digest        Digest // SHA-256 of the archive, from the signed index
	Size          int64  // archive size in bytes, from the signed index
	InstalledSize int64  // bytes of regular files the archive installs
}
