package index

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

func TestGenerateKey(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "repo")
	pubPath, keyPath, err := GenerateKey(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{pubPath: 0o644, keyPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	key, err := LoadSecretKey(keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadTrustedKeys(filepath.Dir(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !keys[0].Equal(key.Public()) {
		t.Fatalf("trusted keys %v do not hold the generated public key", keys)
	}
	msg := []byte("release")
	if !minisign.Verify(keys[0], msg, minisign.Sign(key, msg)) {
		t.Error("the pair does not verify its own signature")
	}

	// Never overwrite, not even half a pair.
	before, _ := os.ReadFile(keyPath)
	if _, _, err := GenerateKey(prefix, nil); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second GenerateKey: err = %v", err)
	}
	os.Remove(pubPath)
	if _, _, err := GenerateKey(prefix, nil); err == nil {
		t.Error("GenerateKey overwrote an existing .key")
	}
	if after, _ := os.ReadFile(keyPath); string(after) != string(before) {
		t.Error("the secret key changed")
	}
	if _, err := os.Stat(pubPath); !os.IsNotExist(err) {
		t.Errorf("a refused GenerateKey wrote %s", pubPath)
	}
	if _, err := LoadSecretKey(keyPath, []byte("pw")); err == nil || !strings.Contains(err.Error(), "not encrypted") {
		t.Errorf("password for an unencrypted key: err = %v", err)
	}
}

func TestLoadSecretKeyEncrypted(t *testing.T) {
	_, key := genKey(t)
	p := filepath.Join(t.TempDir(), "enc.key")
	mustWrite(t, p, string(cheapEncryptedKey(t, key, "s3cret")))
	tests := []struct {
		name     string
		password string
		want     string // error substring; "" for success
	}{
		{"right password", "s3cret", ""},
		{"wrong password", "guess", "wrong password"},
		{"no password", "", "is encrypted: give its password with --password-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadSecretKey(p, []byte(tt.password))
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want == "" && !got.Equal(key):
				t.Error("decrypted another key")
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v; want %q", err, tt.want)
			}
		})
	}
}

// TestGenerateKeyPassword uses minisign's real scrypt cost: about 15 s (60 s
// with -race) and 1 GiB, so it runs only when asked.
func TestGenerateKeyPassword(t *testing.T) {
	if os.Getenv("PACKETS_SLOW_TESTS") == "" {
		t.Skip("set PACKETS_SLOW_TESTS=1: minisign's scrypt takes ~15 s and 1 GiB")
	}
	prefix := filepath.Join(t.TempDir(), "repo")
	_, keyPath, err := GenerateKey(prefix, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecretKey(keyPath, nil); err == nil {
		t.Error("an encrypted key loaded without its password")
	}
	if _, err := LoadSecretKey(keyPath, []byte("pw")); err != nil {
		t.Error(err)
	}
}

func TestLoadTrustedKeys(t *testing.T) {
	pub1, _ := genKey(t)
	pub2, _ := genKey(t)
	text := func(k minisign.PublicKey) string { b, _ := k.MarshalText(); return string(b) + "\n" }
	tests := []struct {
		name  string
		files map[string]string
		want  []minisign.PublicKey
		err   string
	}{
		{"none", nil, []minisign.PublicKey{}, ""},
		{"sorted by file name", map[string]string{"b.pub": text(pub1), "a.pub": text(pub2), "notes.txt": "x"}, []minisign.PublicKey{pub2, pub1}, ""},
		{"a bad file is named", map[string]string{"a.pub": text(pub1), "broken.pub": "untrusted comment: x\nAAAA\n"}, nil, "broken.pub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				mustWrite(t, filepath.Join(dir, name), content)
			}
			got, err := LoadTrustedKeys(dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v; want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].Equal(tt.want[i]) {
					t.Errorf("key %d is %s, want %s", i, got[i], tt.want[i])
				}
			}
		})
	}
	if got, err := LoadTrustedKeys(filepath.Join(t.TempDir(), "missing")); err != nil || len(got) != 0 {
		t.Errorf("missing dir: %v, %v; want no keys, no error", got, err)
	}
}

// cheapEncryptedKey encrypts key in minisign's format with the lowest scrypt
// cost minisign accepts, so that tests of the decrypt path take
// milliseconds; minisign.EncryptKey always uses the "sensitive" cost.
func cheapEncryptedKey(t *testing.T, key minisign.PrivateKey, password string) []byte {
	t.Helper()
	text, err := key.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.SplitN(string(text), "\n", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	plain := raw[54:126] // key ID and Ed25519 key, as MarshalText lays them out
	const ops, mem = 1 << 15, 1 << 24
	var b [158]byte
	binary.LittleEndian.PutUint16(b[0:], minisign.EdDSA)
	binary.LittleEndian.PutUint16(b[2:], 0x6353) // scrypt
	binary.LittleEndian.PutUint16(b[4:], 0x3242) // blake2b
	rand.Read(b[6:38])
	binary.LittleEndian.PutUint64(b[38:], ops)
	binary.LittleEndian.PutUint64(b[46:], mem)
	// ops < mem/32: minisign derives r=8, p=1 and N as the smallest power
	// of two above ops/(8*r) = 512.
	stream, err := scrypt.Key([]byte(password), b[6:38], 1024, 8, 1, 104)
	if err != nil {
		t.Fatal(err)
	}
	msg := append(binary.LittleEndian.AppendUint16(nil, minisign.EdDSA), plain...)
	sum := blake2b.Sum256(msg)
	ct := append(append([]byte{}, plain...), sum[:]...)
	for i := range ct {
		ct[i] ^= stream[i]
	}
	copy(b[54:], ct)
	return []byte("untrusted comment: minisign encrypted secret key\n" + base64.StdEncoding.EncodeToString(b[:]) + "\n")
}
