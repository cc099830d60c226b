package sim

import (
	"fmt"
	"net"
	"net/url"
	"time"
)

// checkLoopback refuses benchmark targets off this machine unless allowed:
// a load test pointed at a shared or production server by mistake is an
// outage.
func checkLoopback(baseURL string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return fmt.Errorf("sim: server URL %q: %w", baseURL, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("sim: refusing to load-test %q: benchmarks target loopback addresses (127.0.0.1, ::1, localhost) unless AllowRemote is set", host)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
