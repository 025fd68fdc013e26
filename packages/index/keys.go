package index

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"aead.dev/minisign"
)

// maxKeyFile bounds a key file read into memory; minisign keys are a few
// hundred bytes.
const maxKeyFile = 16 << 10

// GenerateKey writes a new minisign key pair: PREFIX.key, the secret key
// (mode 0600), and PREFIX.pub, the public key to install in
// /etc/packets/keys/ (mode 0644). With a non-empty password the secret key
// is encrypted the way minisign encrypts it (scrypt with minisign's
// "sensitive" cost, which takes several seconds and 1 GiB of memory);
// without, it is stored unencrypted. Existing files are never overwritten:
// if either path exists, nothing is written.
func GenerateKey(prefix string, password []byte) (pubPath, keyPath string, err error) {
	pubPath, keyPath = prefix+".pub", prefix+".key"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("%s already exists: refusing to overwrite a key; choose another --out", p)
		}
	}
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	var secret []byte
	if len(password) > 0 {
		secret, err = minisign.EncryptKey(string(password), priv)
	} else {
		secret, err = priv.MarshalText()
	}
	if err != nil {
		return "", "", fmt.Errorf("encode secret key: %w", err)
	}
	public, _ := pub.MarshalText() // never fails
	if err := writeFileNew(keyPath, append(secret, '\n'), 0o600); err != nil {
		return "", "", err
	}
	if err := writeFileNew(pubPath, append(public, '\n'), 0o644); err != nil {
		os.Remove(keyPath) // a secret key without its public half is useless
		return "", "", err
	}
	return pubPath, keyPath, nil
}

// LoadSecretKey reads a secret key written by GenerateKey (or by minisign
// -G). An encrypted key needs its password; giving a password for an
// unencrypted key is an error too, so that a wrong --password-file is
// noticed.
func LoadSecretKey(path string, password []byte) (minisign.PrivateKey, error) {
	data, err := readSmallFile(path, maxKeyFile)
	if err != nil {
		return minisign.PrivateKey{}, err
	}
	var key minisign.PrivateKey
	switch enc := minisign.IsEncrypted(data); {
	case enc && len(password) == 0:
		return key, fmt.Errorf("secret key %s is encrypted: give its password with --password-file", path)
	case enc:
		key, err = minisign.DecryptKey(string(password), data)
		if err != nil {
			return key, fmt.Errorf("secret key %s: wrong password or damaged key file", path)
		}
	case len(password) > 0:
		return key, fmt.Errorf("secret key %s is not encrypted: drop --password-file", path)
	default:
		if err := key.UnmarshalText(data); err != nil {
			return key, fmt.Errorf("secret key %s: %w", path, err)
		}
	}
	return key, nil
}

// LoadTrustedKeys reads every *.pub file in dir, sorted by name. A missing
// dir means no trusted key (every release will then be refused as signed by
// an unknown key); a file that is not a minisign public key is an error
// naming it.
func LoadTrustedKeys(dir string) ([]minisign.PublicKey, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, fmt.Errorf("trusted keys %s: %w", dir, err)
	}
	slices.Sort(paths)
	keys := make([]minisign.PublicKey, 0, len(paths))
	for _, p := range paths {
		k, err := LoadPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// LoadPublicKey reads one minisign public key file.
func LoadPublicKey(path string) (minisign.PublicKey, error) {
	var k minisign.PublicKey
	data, err := readSmallFile(path, maxKeyFile)
	if err != nil {
		return k, err
	}
	if err := k.UnmarshalText(data); err != nil {
		return k, fmt.Errorf("public key %s: %w (expected a minisign .pub file)", path, err)
	}
	return k, nil
}

// KeyID formats a key ID the way minisign prints it.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// readSmallFile reads a file that must not exceed max bytes.
func readSmallFile(path string, maxSize int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > maxSize {
		return nil, fmt.Errorf("%s: larger than the %d bytes allowed", path, maxSize)
	}
	return data, nil
}
