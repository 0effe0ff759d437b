//go:build mage

// Build targets for the backend. The SDK's stock targets turn cgo off, which would ship
// go-sqlite3's stub that fails at run time; the callback below turns it on for every target
// with the right C compiler, and pkg/cgo_required.go makes a cgo-less build fail to compile.
//
//	go tool mage -v          the release set: linux/amd64, linux/arm64, windows/amd64
//	go tool mage -v native   only this machine's platform (what the tests launch)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	// mage:import
	build "github.com/grafana/grafana-plugin-sdk-go/build"
)

// Default builds the release set.
var Default = All

// crossCompilers names the Debian cross compiler for each target that is not this machine's.
// Override with CC_<os>_<arch>, e.g. CC_linux_arm64=/opt/cross/bin/gcc.
var crossCompilers = map[string]string{
	"linux/amd64":   "x86_64-linux-gnu-gcc",
	"linux/arm64":   "aarch64-linux-gnu-gcc",
	"linux/arm":     "arm-linux-gnueabihf-gcc",
	"windows/amd64": "x86_64-w64-mingw32-gcc",
}

func init() {
	_ = build.SetBeforeBuildCallback(withCgo)
}

func withCgo(cfg build.Config) (build.Config, error) {
	cfg.PluginJSONPath = "."
	cfg.OutputBinaryPath = "dist"
	if cfg.OS == "" { // the SDK also calls back when it writes the build manifest
		return cfg, nil
	}
	if cfg.OS == "darwin" && runtime.GOOS != "darwin" {
		return cfg, fmt.Errorf("darwin needs Apple's SDK for cgo: build it on a Mac with `go tool mage -v build:darwin build:darwinARM64`")
	}
	cfg.EnableCGo = true
	cfg.Env["CGO_ENABLED"] = "1"
	target := cfg.OS + "/" + cfg.Arch
	cc := os.Getenv("CC_" + cfg.OS + "_" + cfg.Arch)
	if cc == "" && target != runtime.GOOS+"/"+runtime.GOARCH {
		cc = crossCompilers[target]
		if cc == "" {
			return cfg, fmt.Errorf("no C compiler known for %s: set CC_%s_%s", target, cfg.OS, cfg.Arch)
		}
	}
	if cc != "" {
		cfg.Env["CC"] = cc
	}
	// SQLite's full-text index (FTS5, used by the search filter) is compiled in through the
	// C flags: the SDK's build passes its own -tags, which replace any in GOFLAGS, so
	// go-sqlite3's sqlite_fts5 tag would not reach the binaries. scripts/test.sh exports the
	// same flags for go test.
	cfg.Env["CGO_CFLAGS"] = "-O2 -g -DSQLITE_ENABLE_FTS5"
	cfg.Env["CGO_LDFLAGS"] = "-lm"
	// Static linking: the Linux binaries then start on Alpine (musl) images as well as glibc
	// ones, and the Windows one needs no MinGW DLLs.
	if cfg.OS == "linux" || cfg.OS == "windows" {
		cfg.Env["CGO_LDFLAGS"] = "-static -lm"
	}
	return cfg, nil
}

// All builds the backend for linux/amd64, linux/arm64 and windows/amd64 and checks each binary.
func All() error {
	b := build.Build{}
	mg.SerialDeps(b.Linux, b.LinuxARM64, b.Windows)
	return verify("linux", "amd64", "linux", "arm64", "windows", "amd64")
}

// Native builds the backend for this machine only.
func Native() error {
	mg.Deps(build.Build{}.Backend)
	return verify(runtime.GOOS, runtime.GOARCH)
}

// verify fails unless every named binary was built with cgo and FTS5 (go version -m reads the
// build settings recorded in the binary, also for other platforms).
func verify(osArch ...string) error {
	for i := 0; i < len(osArch); i += 2 {
		exe := fmt.Sprintf("dist/gpx_wizauditlogs_%s_%s", osArch[i], osArch[i+1])
		if osArch[i] == "windows" {
			exe += ".exe"
		}
		out, err := sh.Output("go", "version", "-m", exe)
		if err != nil {
			return fmt.Errorf("%s: %w", exe, err)
		}
		if !strings.Contains(out, "CGO_ENABLED=1") {
			return fmt.Errorf("%s was built without cgo: SQLite would not work", exe)
		}
		if !strings.Contains(out, "-DSQLITE_ENABLE_FTS5") {
			return fmt.Errorf("%s was built without SQLite's FTS5: search would not work", exe)
		}
	}
	return nil
}
