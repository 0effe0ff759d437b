// Command wizfake serves a fake Wiz tenant (token endpoint and audit log GraphQL API) for
// demos and manual testing of the data source.
//
//	wizfake -addr 127.0.0.1:8090 -events 50000 -days 30 -live
//
// Point the data source at http://<addr>/graphql (API URL) and http://<addr>/oauth/token
// (token URL) with the printed client ID and secret. Every flag can also be set from the
// environment (WIZFAKE_ADDR, WIZFAKE_SEED, WIZFAKE_EVENTS, WIZFAKE_DAYS, WIZFAKE_CLIENT_ID,
// WIZFAKE_CLIENT_SECRET, WIZFAKE_LIVE, WIZFAKE_TOKEN_LIFETIME, WIZFAKE_RATE_LIMIT); a flag on
// the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/seed/wizauditlogs/pkg/wizfake"
)

func envString(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(key), 64); err == nil {
		return v
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func main() {
	addr := flag.String("addr", envString("WIZFAKE_ADDR", "127.0.0.1:8090"), "listen address")
	seed := flag.Int64("seed", int64(envInt("WIZFAKE_SEED", 1)), "generator seed")
	events := flag.Int("events", envInt("WIZFAKE_EVENTS", 20000), "number of audit log events to generate")
	days := flag.Float64("days", envFloat("WIZFAKE_DAYS", 30), "generated events span this many days up to now")
	clientID := flag.String("client-id", envString("WIZFAKE_CLIENT_ID", wizfake.DefaultClientID), "accepted client ID")
	clientSecret := flag.String("client-secret", envString("WIZFAKE_CLIENT_SECRET", wizfake.DefaultClientSecret), "accepted client secret")
	live := flag.Bool("live", envBool("WIZFAKE_LIVE", false), "add a few new events every few seconds")
	liveEvery := flag.Duration("live-interval", envDuration("WIZFAKE_LIVE_INTERVAL", 5*time.Second), "how often -live adds events")
	tokenLife := flag.Duration("token-lifetime", envDuration("WIZFAKE_TOKEN_LIFETIME", time.Hour), "lifetime of issued tokens")
	rateLimit := flag.Float64("rate-limit", envFloat("WIZFAKE_RATE_LIMIT", 0), "hard GraphQL requests per second (429 above; 0 = none)")
	afterIn := flag.Bool("after-inclusive", envBool("WIZFAKE_AFTER_INCLUSIVE", false), "timestamp.after is inclusive (default exclusive)")
	beforeIn := flag.Bool("before-inclusive", envBool("WIZFAKE_BEFORE_INCLUSIVE", false), "timestamp.before is inclusive (default exclusive)")
	flag.Parse()

	if *events < 0 || *days <= 0 {
		log.Fatal("wizfake: -events must be >= 0 and -days > 0")
	}
	start := time.Now()
	tenant := wizfake.New(wizfake.Options{
		Seed:            *seed,
		Events:          *events,
		Span:            time.Duration(*days * float64(24*time.Hour)),
		ClientID:        *clientID,
		ClientSecret:    *clientSecret,
		TokenLifetime:   *tokenLife,
		RateLimit:       *rateLimit,
		AfterInclusive:  *afterIn,
		BeforeInclusive: *beforeIn,
	})
	log.Printf("wizfake: generated %d events over %g days in %s", tenant.Len(), *days, time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("wizfake: %v", err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("wizfake listening on %s\n  API URL:   %s\n  token URL: %s\n  client ID: %s\n",
		ln.Addr(), wizfake.GraphQLURL(base), wizfake.TokenURL(base), *clientID)
	if *clientSecret == wizfake.DefaultClientSecret {
		fmt.Printf("  client secret: %s (the default)\n", *clientSecret)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *live {
		go addLive(ctx, tenant, *seed, *liveEvery)
	}

	srv := &http.Server{Handler: tenant, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("wizfake: %v", err)
	}
}

// addLive adds one to five new events every interval, timestamped within the last interval.
func addLive(ctx context.Context, tenant *wizfake.Tenant, seed int64, every time.Duration) {
	r := rand.New(rand.NewPCG(uint64(seed), 0x11fe))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := 1 + r.IntN(5)
			tenant.AddGenerated(n, now.Add(-every), now)
			log.Printf("wizfake: added %d live events (%d in total)", n, tenant.Len())
		}
	}
}
