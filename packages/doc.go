// Package packages is the shared vocabulary of packets and its archive format.
//
// It owns package names, versions and version constraints, SHA-256 digests,
// manifest.toml, and the .tar.zst package archive: building one
// deterministically, reading one as a stream that validates every entry, and
// extracting one into an *os.Root through staged temporary names (or, for a
// tree that is wholly new, a hidden sibling directory renamed into place).
//
// It is the leaf of the module: it imports only the standard library, toml,
// zstd and uuid, and it never touches the network, a database or the
// configured machine layout. Everything else in packets imports it.
package packages
