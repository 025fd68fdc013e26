package peer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/packets-dev/packets/packages"
)

// rawGet sends a request line as written (no client-side cleaning) and
// returns the status code and body.
func rawGet(t *testing.T, addr, method, target string, header ...string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n%s\r\n", method, target, strings.Join(header, ""))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServerHTTP(t *testing.T) {
	blob, w := testBlob("x", 1000, 3)
	hex := w.Digest.String()
	cache := newCache(t, blob)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	link := packages.SumBytes([]byte("link"))
	os.Symlink(secret, cache.Path(link))
	dirBlob := packages.SumBytes([]byte("dir"))
	os.Mkdir(cache.Path(dirBlob), 0o755)
	os.WriteFile(filepath.Join(cache.Dir, hex+".part"), blob[:10], 0o644)

	repo := t.TempDir()
	files := map[string]string{
		"release.toml":         "repo = \"\"\nversion = 3\n[index]\nfile = \"index-3.db\"\nsize = 5\n",
		"release.toml.minisig": "sig",
		"index-3.db":           "index",
		"index-2.db":           "old index",
		"installed.db":         "private",
	}
	for name, data := range files {
		os.WriteFile(filepath.Join(repo, name), []byte(data), 0o644)
	}
	s := serve(t, &Server{Cache: cache, Repos: map[string]string{"": repo}})
	addr := s.http.String()

	tests := []struct {
		method, target string
		header         string
		code           int
		body           string // checked when not empty
	}{
		{"GET", "/blobs/" + hex, "", 200, string(blob)},
		{"HEAD", "/blobs/" + hex, "", 200, ""},
		{"GET", "/blobs/" + hex, "Range: bytes=990-\r\n", 206, string(blob[990:])},
		{"GET", "/blobs/" + hex, "Range: bytes=5000-\r\n", 416, ""},
		{"POST", "/blobs/" + hex, "", 405, ""},
		{"DELETE", "/blobs/" + hex, "", 405, ""},
		{"GET", "/blobs/" + strings.ToUpper(hex), "", 404, ""},
		{"GET", "/blobs/" + hex + ".tar.zst", "", 404, ""},
		{"GET", "/blobs/" + hex + ".part", "", 404, ""},
		{"GET", "/blobs/" + hex + "/", "", 404, ""},
		{"GET", "/blobs/" + hex[:63], "", 404, ""},
		{"GET", "/blobs/" + packages.SumBytes([]byte("absent")).String(), "", 404, ""},
		{"GET", "/blobs/" + link.String(), "", 404, ""},
		{"GET", "/blobs/" + dirBlob.String(), "", 404, ""},
		{"GET", "/blobs/", "", 404, ""},
		{"GET", "/blobs", "", 404, ""},
		{"GET", "/", "", 404, ""},
		{"GET", "/blobs/../" + hex + ".tar.zst", "", 404, ""},
		{"GET", "/blobs/%2e%2e/x", "", 404, ""},
		{"GET", "//blobs/" + hex, "", 404, ""},
		{"GET", "/blobs/" + hex + "?x=1", "", 200, string(blob)},
		{"POST", "/nothing", "", 404, ""},
		{"GET", "/repos/default/release.toml", "", 200, files["release.toml"]},
		{"GET", "/repos/default/release.toml.minisig", "", 200, "sig"},
		{"GET", "/repos/default/index-3.db", "", 200, "index"},
		{"GET", "/repos/default/index-2.db", "", 404, ""},
		{"GET", "/repos/default/installed.db", "", 404, ""},
		{"GET", "/repos/default/", "", 404, ""},
		{"GET", "/repos/default/../default/index-3.db", "", 404, ""},
		{"GET", "/repos/extra/release.toml", "", 404, ""},
		{"GET", "/repos/", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			code, body := rawGet(t, addr, tt.method, tt.target, tt.header)
			if code != tt.code {
				t.Errorf("status %d, want %d (body %.80q)", code, tt.code, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %.40q…, want %.40q…", body, tt.body)
			}
			if code == 404 && strings.Contains(body, "secret") {
				t.Error("leaked the secret")
			}
		})
	}
}

func TestServerHTTPHeaders(t *testing.T) {
	blob, w := testBlob("x", 1000, 3)
	s := serve(t, &Server{Cache: newCache(t, blob)})
	resp, err := http.Get("http://" + s.http.String() + "/blobs/" + w.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Etag", "Accept-Ranges", "X-Content-Type-Options"} {
		got[k] = resp.Header.Get(k)
	}
	want := map[string]string{
		"Content-Type": "application/octet-stream", "Content-Length": "1000", "Etag": `"` + w.Digest.String() + `"`,
		"Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestServerHTTPRefusesForeign(t *testing.T) {
	blob, w := testBlob("x", 1000, 3)
	// The loopback interface claims 10.9.9.1/24 only: 127.0.0.1 is not
	// ours, so connections to it are refused.
	s := serve(t, &Server{Cache: newCache(t, blob), Interfaces: loIfaces(t, "10.9.9.1/24")})
	resp, err := http.Get("http://" + s.http.String() + "/blobs/" + w.Digest.String())
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET from outside the subnet: %s", resp.Status)
	}
	if got := s.Stats().Refused; got != 1 {
		t.Errorf("Refused = %d, want 1", got)
	}
}
