package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/packets-dev/packets/fetch"
	"github.com/packets-dev/packets/packages"
)

// Server answers LAN queries for the blobs in Cache and serves them over
// HTTP, read-only. It can also serve repositories' signed release and index
// (Repos), so that a machine without a route to the mirror can sync from a
// neighbour. Set the fields, then call ListenAndServe (the daemon) or Serve
// (injected sockets). A Server runs once.
type Server struct {
	Cache  *fetch.Cache
	Config Config
	// Repos maps a repository name ("" or "default" for the default one) to
	// a directory holding its release.toml, release.toml.minisig and the
	// index file that release.toml names: exactly those three files are
	// served, under /repos/<name>/. nil serves none. The directory should be
	// one kept for this purpose (the files of the last verified sync), but
	// nothing else in it is ever served.
	Repos map[string]string
	// Key is this host's key in P answers; 0 means InterfaceKey of
	// Interfaces. cmd/packets sets MachineKey of the machine id, as it does
	// for its Source.
	Key HostKey
	// Interfaces lists the host's interfaces; nil means SystemInterfaces.
	// The list is re-read at most every few seconds. Tests inject it.
	Interfaces func() ([]Interface, error)
	// QueryRate and QueryBurst bound the queries answered per source IP (a
	// token bucket): 0 means DefaultQueryRate per second and
	// DefaultQueryBurst.
	QueryRate  float64
	QueryBurst int

	stats    counters
	ifaces   *ifaceTable
	repoKey  map[packages.Digest]string // RepoKey → repository name in URLs
	repoDirs map[string]string          // repository name in URLs → directory
}

// Defaults of the per-source query limit: an apply asks about each of its
// blobs at once, twice when nobody holds them (Source.Prepare), so the
// burst takes an apply of 2,000 packages, and a second apply a few seconds
// later. An answer is never larger than its query and costs a stat or two.
const (
	DefaultQueryRate  = 1000
	DefaultQueryBurst = 4096
)

// Stats counts what a Server did, for logs, status and tests.
type Stats struct {
	Datagrams int64 // UDP datagrams received
	Answered  int64 // queries answered "H:" or "P:"
	Pending   int64 // of those, answered "P:": a download in progress
	Unsent    int64 // answers the socket refused to send (also in Answered)
	Missing   int64 // well-formed queries for blobs not held: no answer
	Malformed int64 // not a query: ignored
	Foreign   int64 // sender outside the receiving interface's subnets, or an interface not served
	Self      int64 // our own queries (sender is one of our addresses)
	Limited   int64 // dropped by the per-source rate limit
	Requests  int64 // HTTP requests
	Served    int64 // blobs and repository files served (200 or 206)
	Followed  int64 // of those, blobs served as their download went on
	Refused   int64 // HTTP connections refused by the subnet rule
}

type counters struct {
	datagrams, answered, pending, unsent, missing, malformed, foreign, self, limited atomic.Int64
	requests, served, followed, refused                                              atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Datagrams: c.datagrams.Load(), Answered: c.answered.Load(), Pending: c.pending.Load(), Unsent: c.unsent.Load(),
		Missing: c.missing.Load(), Malformed: c.malformed.Load(), Foreign: c.foreign.Load(), Self: c.self.Load(),
		Limited: c.limited.Load(), Requests: c.requests.Load(), Served: c.served.Load(), Followed: c.followed.Load(),
		Refused: c.refused.Load(),
	}
}

// ListenAndServe binds the configured UDP and HTTP ports on every IPv4
// address (0.0.0.0: a socket bound to one address does not receive
// broadcasts; Config.Interfaces is enforced per datagram and per
// connection), calls ready with the bound addresses, then serves until ctx
// is done. ready may be nil.
func (s *Server) ListenAndServe(ctx context.Context, ready func(udpAddr, httpAddr net.Addr)) error {
	udp, ln, err := s.listen(ctx)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(udp.LocalAddr(), ln.Addr())
	}
	return s.Serve(ctx, udp, ln)
}

// Serve answers queries arriving on udp and serves HTTP on httpLn until ctx
// is done, then shuts down (waiting a few seconds for transfers in flight)
// and returns nil. It closes both sockets. Answers carry httpLn's port. It
// returns an error when a socket fails.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, httpLn net.Listener) error {
	growReadBuffer(udp) // the queries of a batch arrive together
	log := s.Config.logger()
	if err := s.init(); err != nil {
		udp.Close()
		httpLn.Close()
		return err
	}
	defer httpLn.Close() // also when stopped before http.Server.Serve took it
	httpPort := httpLn.Addr().(*net.TCPAddr).Port
	srv := s.httpServer()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		udp.SetReadDeadline(time.Now()) // unblock the reader
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	})
	g.Go(func() error {
		err := s.answer(gctx, udp, httpPort)
		udp.Close()
		return err
	})
	g.Go(func() error {
		err := srv.Serve(s.filterListener(httpLn))
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("peer http: %w", err)
	})
	blobs := -1
	if list, err := s.Cache.List(); err == nil {
		blobs = len(list)
	}
	log.Info("serving the cache to LAN peers", "udp", udp.LocalAddr().String(), "http", httpLn.Addr().String(),
		"blobs", blobs, "interfaces", s.Config.Interfaces)
	s.warnUnknownInterfaces()
	err := g.Wait()
	st := s.Stats()
	log.Info("peer server stopped", "answered", st.Answered, "served", st.Served, "ignored",
		st.Malformed+st.Foreign+st.Self+st.Limited)
	return err
}

// shutdownGrace is how long a stopping server waits for transfers in flight.
const shutdownGrace = 5 * time.Second

func (s *Server) init() error {
	if s.Cache == nil {
		return errors.New("peer server: no cache")
	}
	if s.ifaces != nil {
		return errors.New("peer server: already started")
	}
	list := s.Interfaces
	if list == nil {
		list = SystemInterfaces
	}
	s.ifaces = &ifaceTable{list: list}
	s.repoKey = map[packages.Digest]string{}
	s.repoDirs = map[string]string{}
	for name := range s.Repos {
		s.repoKey[RepoKey(name)] = repoDirName(name)
		s.repoDirs[repoDirName(name)] = s.Repos[name]
	}
	return nil
}

// logger is the server's logger, never nil.
func (s *Server) logger() *slog.Logger { return s.Config.logger() }

// warnUnknownInterfaces logs configured interface names that do not exist
// (yet): nothing is answered on them.
func (s *Server) warnUnknownInterfaces() {
	ifs, err := s.ifaces.get(0)
	if err != nil {
		s.logger().Warn("cannot list network interfaces", "err", err)
		return
	}
	for _, name := range s.Config.Interfaces {
		if !slices.ContainsFunc(ifs, func(ifi Interface) bool { return ifi.Name == name }) {
			s.logger().Warn("configured interface not found: nothing is answered on it until it appears", "interface", name)
		}
	}
}
