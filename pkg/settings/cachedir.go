package settings

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// CacheLocation is where the SQLite caches live and how that was chosen.
type CacheLocation struct {
	Dir string
	// Durable is false when the directory is a user cache or temporary directory, which may
	// not survive a restart of Grafana's host or container; the health check then warns.
	Durable bool
	Source  string // what chose it, for messages
}

// CacheDirName is the folder made under Grafana's data directory or a fallback.
const CacheDirName = "seed-wizauditlogs"

// ResolveCacheLocation applies this order (README, "Install into an existing Grafana"): the cache_dir key of the plugin's
// grafana.ini section (GF_PLUGIN_CACHE_DIR), then $GF_PATHS_DATA/seed-wizauditlogs, then the
// user cache directory, then the temporary directory. getenv is os.Getenv outside tests.
func ResolveCacheLocation(getenv func(string) string) CacheLocation {
	if dir := getenv("GF_PLUGIN_CACHE_DIR"); dir != "" {
		return CacheLocation{Dir: filepath.Clean(dir), Durable: true, Source: "cache_dir"}
	}
	if data := getenv("GF_PATHS_DATA"); data != "" {
		return CacheLocation{Dir: filepath.Join(data, CacheDirName), Durable: true, Source: "GF_PATHS_DATA"}
	}
	if dir, err := os.UserCacheDir(); err == nil && dir != "" {
		return CacheLocation{Dir: filepath.Join(dir, CacheDirName), Source: "user cache directory"}
	}
	return CacheLocation{Dir: filepath.Join(os.TempDir(), CacheDirName), Source: "temporary directory"}
}

// Warning is the health-check line for a location that may not survive a restart, or "".
func (l CacheLocation) Warning() string {
	if l.Durable {
		return ""
	}
	return fmt.Sprintf("the cache is in the %s (%s) and may not survive a restart: set cache_dir in the [plugin.seed-wizauditlogs-datasource] section of grafana.ini", l.Source, l.Dir)
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// CacheFile is the file of one data source: one per organisation and data source UID.
func (l CacheLocation) CacheFile(orgID int64, uid string) string {
	name := unsafeFileChars.ReplaceAllString(uid, "_")
	if name != uid || name == "" {
		// Grafana UIDs need no escaping; anything else gets a hash so two UIDs never share a file.
		sum := sha256.Sum256([]byte(uid))
		name += "-" + hex.EncodeToString(sum[:6])
	}
	return filepath.Join(l.Dir, fmt.Sprintf("org%d-%s.sqlite", orgID, name))
}
