//go:build netns

package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/packets-dev/packets/fetch"
)

// benchResult is what the bench role measured in B.
type benchResult struct {
	DiscoveryMicros float64 `json:"discovery_us"` // median time to the first answer
	FallbackMillis  float64 `json:"fallback_ms"`  // median time to "no peer has it"
	PeerMBps        float64 `json:"peer_mbps"`    // median, one blob from A
	MirrorMBps      float64 `json:"mirror_mbps"`  // median, the same blob from the mirror
}

// BenchmarkNetnsTransfer measures, across the veth LAN, the throughput of
// a 64 MiB blob from peer A and from the mirror (the same kind of link,
// the same Fetcher writing to disk), their ratio, the discovery latency
// (query broadcast to first answer) and how long the peer source takes to
// give up on a blob no peer holds (after which the mirror is asked). The
// "1gbit" case shapes the switch's port towards B with tc (a token bucket
// at 1 Gbit/s), as a real LAN link, and reports the peer's share of it.
// Root only:
//
//	go test -tags netns -run '^$' -bench NetnsTransfer -benchtime 1x ./peer
func BenchmarkNetnsTransfer(b *testing.B) {
	for _, rate := range []string{"unshaped", "1gbit"} {
		b.Run(rate, func(b *testing.B) {
			l := newLAN(b)
			if rate != "unshaped" {
				// lanHosts[2] is B, behind the switch port p2.
				tc(b, "-n", l.ns("sw"), "qdisc", "add", "dev", "p2", "root", "tbf", "rate", rate, "burst", "1mb", "latency", "50ms")
			}
			f := newFixture(b, 64<<20)
			l.start(b, "m", "mirror", netnsEnv("DIR", f.mirrorDir), netnsEnv("LOG", f.mirrorLog))
			l.start(b, "a", "serve", netnsEnv("CACHE", f.cacheA))
			var r benchResult
			for b.Loop() {
				out := l.run(b, "b", "bench", netnsEnv("WANTS", f.wantsFile),
					netnsEnv("MIRROR", fmt.Sprintf("http://%s:%d", l.addrs["m"], mirrorPort)))
				if err := json.Unmarshal(out, &r); err != nil {
					b.Fatalf("bench output %q: %v", out, err)
				}
			}
			b.ReportMetric(r.PeerMBps, "peer-MB/s")
			b.ReportMetric(r.MirrorMBps, "mirror-MB/s")
			b.ReportMetric(r.PeerMBps/r.MirrorMBps, "peer/mirror")
			if rate == "1gbit" {
				b.ReportMetric(r.PeerMBps*8/1000, "peer/line-rate")
			}
			b.ReportMetric(r.DiscoveryMicros, "discovery-µs")
			b.ReportMetric(r.FallbackMillis, "fallback-ms")
		})
	}
}

func tc(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
		t.Fatalf("tc %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// runBench measures in B; see BenchmarkNetnsTransfer.
func runBench(ctx context.Context, wantsFile, mirrorURL string) error {
	wants, err := readWants(wantsFile)
	if err != nil {
		return err
	}
	m, err := fetch.NewMirror(mirrorURL, fetch.NewClient())
	if err != nil {
		return err
	}
	if c, err := net.DialTimeout("tcp4", m.Base.Host, 10*time.Second); err != nil {
		return fmt.Errorf("mirror unreachable: %w", err)
	} else {
		c.Close()
	}
	var r benchResult
	if r.DiscoveryMicros, err = discoveryLatency(ctx, wants[0], 30); err != nil {
		return err
	}
	if r.FallbackMillis, err = fallbackLatency(ctx, wants[0], 5); err != nil {
		return err
	}
	if r.PeerMBps, err = throughput(ctx, &Source{}, wants[0], 3); err != nil {
		return err
	}
	if r.MirrorMBps, err = throughput(ctx, m, wants[0], 3); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// discoveryLatency broadcasts n queries for w and returns the median time
// to the first answer, in microseconds.
func discoveryLatency(ctx context.Context, w fetch.Want, n int) (float64, error) {
	ifs, err := SystemInterfaces()
	if err != nil {
		return 0, err
	}
	targets := BroadcastTargets(Config{}, ifs)
	var lat []float64
	for range n {
		conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return 0, err
		}
		start := time.Now()
		peers, err := startDiscovery(ctx, conn, targets, w.Digest, time.Second)
		if err != nil {
			conn.Close()
			return 0, err
		}
		_, ok := <-peers
		took := time.Since(start)
		conn.Close() // ends the reader at once
		for range peers {
		}
		if !ok {
			return 0, fmt.Errorf("no answer within a second (targets %v)", targets)
		}
		lat = append(lat, float64(took.Microseconds()))
	}
	return median(lat), nil
}

// fallbackLatency asks the LAN n times for a blob nobody holds and returns
// the median time, in milliseconds, until the peer source gives up (and a
// Fetcher would go on to the mirror).
func fallbackLatency(ctx context.Context, w fetch.Want, n int) (float64, error) {
	absent := w
	absent.Digest[0] ^= 0xff
	var lat []float64
	for range n {
		start := time.Now()
		_, err := (&Source{}).Fetch(ctx, absent, io.Discard, 0)
		if !errors.Is(err, fetch.ErrNotFound) {
			return 0, fmt.Errorf("fetch of a blob no peer holds: %v, want not found", err)
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	return median(lat), nil
}

// throughput fetches w from src alone into fresh caches n times and
// returns the median rate in MB/s (10^6 bytes).
func throughput(ctx context.Context, src fetch.Source, w fetch.Want, n int) (float64, error) {
	var rates []float64
	for range n {
		cache, done, err := tempCache()
		if err != nil {
			return 0, err
		}
		f := &fetch.Fetcher{Cache: cache, Sources: []fetch.Source{src}}
		start := time.Now()
		res, err := f.FetchAll(ctx, []fetch.Want{w})
		took := time.Since(start)
		done()
		if err != nil {
			return 0, err
		}
		if !strings.HasPrefix(res[0].Source, strings.Fields(src.String())[0]) {
			return 0, fmt.Errorf("came from %s, not %s", res[0].Source, src)
		}
		rates = append(rates, float64(w.Size)/took.Seconds()/1e6)
	}
	return median(rates), nil
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
