// Package fetch gets verified archive bytes: a content-addressed cache, HTTP
// mirrors tried in order, and a Fetcher that downloads a set of blobs into the
// cache concurrently.
//
// What it owns:
//
//   - Cache: a flat directory of <sha256>.tar.zst blobs (DESIGN.md §3). A blob
//     appears under its final name only after its size and SHA-256 were checked
//     against the signed index and the part file was renamed into place: the
//     final name existing means the blob is complete and verified. FetchAll
//     makes what it downloaded durable with one syncfs before it returns.
//     Unfinished downloads live beside it as <sha256>.part and are resumed by
//     the next run.
//   - Source: anything that can write a blob's bytes from an offset (an HTTP
//     Mirror, later a LAN peer). Sources never verify: the Fetcher hashes every
//     byte it writes to the part file and checks size and digest before the
//     blob becomes visible. A source can therefore slow a fetch down or make
//     it fail over to the next source, never corrupt the cache.
//   - Fetcher: for each wanted blob, tries the sources in order, resumes
//     interrupted downloads with Range requests (within one source and across
//     sources), retries transient failures (5xx, 429, timeouts, stalls, resets,
//     truncated bodies) with capped exponential backoff and jitter, and moves
//     to the next source on a digest or size mismatch (never retried from the
//     same source). It reports progress through an Observer and never prints.
//   - Mirrors.Get: small signed files (release.toml, its signature, the index)
//     read into memory under a size cap enforced while reading.
//
// Bounds against a hostile network: a body is never read past the promised
// size (an endless body is cut off and is an error); no byte for
// RetryPolicy.Stall (default 30 s) ends an attempt; every attempt has a total
// timeout; redirects to another host or from https to http are refused unless
// Mirror.AllowCrossHost is set; an HTML page where a blob was expected is
// reported as such; response headers are capped by the transport NewClient
// builds.
//
// Choices where the design is silent: a mismatch is blamed on a source only
// when every byte of the part came from it; a part resumed from another
// source or an earlier run gets one more try from offset 0 on the same
// source first. A source that exhausted its retries on transient errors
// without sending a byte is skipped for the rest of the FetchAll. A part
// file that failed on transient errors is kept for the next run to resume;
// one with wrong bytes is removed. A server that ignores Range (200) or
// answers 416 restarts the download from 0 at once, as a retry.
//
// What it must not do: change anything outside the cache directory, decide
// which packages are wanted (the caller passes Wants taken from the signed
// index), or import anything but packages. Writers of the cache (FetchAll,
// Clean) must hold the packets lock (/var/lib/packets/lock), which also means
// one FetchAll per cache at a time; readers (the peer server) need not,
// because a blob is only ever visible complete.
//
// Callers: cmd/packets wires a Fetcher for apply (reconcile sees it through its
// own small interface), uses Mirrors.Get for sync and Cache.Clean for
// `packets cache clean`; peer serves Cache blobs and provides a Source.
package fetch
