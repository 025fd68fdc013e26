// Package peer is packets on the LAN (DESIGN.md §10): a daemon that answers
// discovery queries for the blobs in the local cache and serves them over
// HTTP, read-only, and a fetch.Source that finds a blob on a neighbour
// before the mirrors are asked.
//
// # Protocol
//
// A client sends, from a fresh UDP socket, the query "Q:<sha256>" padded
// with spaces to 128 bytes (Query) to the directed broadcast address of
// each up, broadcast-capable, non-loopback interface (BroadcastTargets) on
// the discovery port (1333). A peer that holds the blob in its cache
// answers by unicast, from its discovery socket, "H:<sha256>:<http-port>"
// (Answer; at most 72 bytes, so never larger than the query). The client
// starts downloading GET /blobs/<sha256> (Range from its offset) from the
// first answer and keeps the others that arrive within the window (150 ms)
// to fall back on, at most MaxPeers. Nothing is broadcast unless the caller
// builds a Source: with [peer] enabled = false, cmd/packets builds none.
//
// # Asking about a whole batch
//
// A Fetcher asks its Preparer sources about every blob it is about to
// download before it downloads any (fetch.Preparer): Source.Prepare sends
// a query for each, paced (64 a millisecond per target, read as they are
// answered, with socket buffers of 4 MiB), and reads the answers for one
// window from the last query, ending as soon as every blob has a holder.
// Each blob's Fetch then uses what was learnt; a blob whose holders all
// fail is asked about again on its own. So a machine with peering on and no neighbour pays
// one window per apply, not one per blob (200 blobs, four at a time: 8.6 s
// of windows before). A blob asked for again (its delivery failed) is
// queried on its own.
//
// # Hosts that fetch at the same moment
//
// §10's protocol finds blobs that a neighbour holds; hosts that apply the
// same state at once hold nothing yet, and each would go to the mirror.
// packets adds one answer for them. A FetchAll claims the blobs it is
// about to download (fetch.Cache.InProgress: a locked claims file in the
// cache, and an OFD lock on each part file while it is written), and a
// daemon whose host claimed a queried blob answers
// "P:<sha256>:<port>:<held>:<intent>:<key>" (Pending): held is the bytes
// it has if they came in within the last second, else 0; intent says
// whether the host is still deciding, fetches the blob from a mirror
// itself, or takes it from a peer; key is the host's key (HostKey: from its
// machine id, else from the lowest address peering talks on; one per host
// however many subnets it is on). The
// daemon serves GET /blobs/<sha256> of such a blob as it arrives
// (fetch.Cache.Follow, waiting for a claimed one to start; chunked, from
// the first byte only: a range request gets 416, and a download that stops
// cuts the body short).
//
// A client that finds no holder in the window asks again after a short
// settle (an eighth of the window, 10–50 ms) and follows (followOrder) a
// downloader whose bytes are coming in, then one that fetches from a
// mirror, then an undecided one with a lower key. A host with a lower key
// than every undecided claimant, and nobody else to take from, fetches
// from the mirror and says so in its claims; the others follow it. Nobody
// waits on a host that waits on them: bytes coming in come from elsewhere,
// a mirror-bound host waits on nobody, and an undecided host follows only
// lower keys or those two kinds. The daemon sends the headers at once and
// the body as the download goes; a follower gives the first byte
// StartWait (the claimant may not have started) and the whole an eighth of
// MinRate, follows at most three downloaders per blob, and one whose
// download failed it (it can be held up by its own source) is not banned,
// but not followed again in the run. What a client takes from a
// downloader is checked like anything from a peer. A client that knows
// only H ignores P answers.
//
// # What the server answers
//
// It ignores, and counts (Stats), every datagram that is not exactly a
// well-formed query (ParseQuery: fuzzed), and answers only when all of
// these hold:
//
//   - the sender is not this host: its address is not one of our
//     non-loopback addresses (our client broadcasts only from those, and
//     the kernel loops our own broadcasts back to us). The wire format has
//     no room for a nonce, so the address is the test; a datagram from
//     127.0.0.0/8 can only be a deliberate local unicast and is answered.
//   - the sender is inside a subnet of the interface the datagram arrived
//     on, learnt per datagram with IP_PKTINFO (recvmsg) on the one socket
//     bound to 0.0.0.0:1333 (binding per address would not receive
//     broadcasts). Where IP_PKTINFO is unavailable (an injected conn that is
//     not a UDP socket) any served interface's subnet will do.
//   - that interface is one Config.Interfaces allows (empty: all);
//   - the sender's token bucket (per source IP, DefaultQueryBurst, then
//     DefaultQueryRate per second; the table is bounded) has a token. The
//     limit is taken before parsing: garbage costs its sender tokens too.
//   - the blob is a regular file in the cache (one stat), or the digest is
//     RepoKey of a repository the server serves.
//
// The HTTP side serves GET and HEAD of /blobs/<64 lowercase hex> from the
// cache with http.ServeContent (Range, If-Range on a content-addressed
// ETag), and /repos/<name>/ release.toml, release.toml.minisig and the
// index file that release.toml names, from Server.Repos. Anything else is
// 404: no listings, no redirects, no symlinks followed (O_NOFOLLOW). It
// applies the subnet rule to connections too (the client must be inside a
// subnet of the interface holding the address it connected to), accepts
// at most 128 connections at once, and bounds header reads, idle
// keep-alives and each response's write time (scaled to its size at
// 64 KiB/s).
//
// # What the client trusts
//
// Nothing. Source writes into the Fetcher's part file, which hashes every
// byte and checks size and SHA-256 against the signed index before a blob
// enters the cache. Source also hashes a download it starts from byte 0:
// wrong bytes ban the peers that sent them and return a *MismatchError
// that matches fetch.ErrRestart, so that the Fetcher discards them and asks
// again at once, and the next query skips the liars. A peer that fails in
// any way (HTTP error, no byte for Source.Stall, slower on average than
// Source.MinRate, truncated, wrong bytes) is abandoned for the next
// answer, resuming where it stopped, and is not asked again by that
// Source. No answer, or only bad peers, is fetch.ErrNotFound: the Fetcher
// goes on to the mirrors. A lying peer costs time, never correctness.
// Peer downloads never go through an HTTP proxy.
//
// Repositories: a Server with Repos also answers queries for RepoKey(name)
// and serves that repository's signed files; Repo is the client side, a
// Getter for index.Sync, which verifies them as it does a mirror's. So a
// machine with no route to the mirror can sync from a neighbour.
//
// # The daemon
//
// Daemon.Run is `packets serve` (foreground, for systemd: see
// examples/systemd/packets-serve.service; it notifies readiness when run
// as Type=notify). Start is `serve init`: it runs the daemon detached and
// returns once it listens, told through a pipe (ReadyFDEnv). Stop is
// `serve stop`: it signals only a process whose command line
// IsPacketsDaemon recognises, through a pidfd, and removes a stale pid
// file without signalling anything. ReadStatus is `serve status`.
//
// The package never prints; it logs through Config.Logger. It imports
// packages and fetch (Cache, Mirror for the HTTP mechanics, the error
// types the Fetcher classifies). Callers: cmd/packets builds the Server and
// Daemon for `packets serve`, and puts a Source before the mirrors in the
// Fetcher's sources when [peer] enabled = true.
package peer
