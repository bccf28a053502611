package stripe_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// stripe-mock: started once for the package's tests, found by
// STRIPE_MOCK_BIN or on PATH (scripts/test.sh installs it into .run/bin and
// puts it there). Absent, the tests that need it fail: never skip.
var (
	mockOnce sync.Once
	mockURL  string
	mockErr  error
	mockCmd  *exec.Cmd
)

func TestMain(m *testing.M) {
	code := m.Run()
	if mockCmd != nil && mockCmd.Process != nil {
		_ = mockCmd.Process.Kill()
		_ = mockCmd.Wait()
	}
	os.Exit(code)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stripeMock answers the base URL of a running stripe-mock.
func stripeMock(t *testing.T) string {
	t.Helper()
	mockOnce.Do(func() {
		bin := os.Getenv("STRIPE_MOCK_BIN")
		if bin == "" {
			bin, mockErr = exec.LookPath("stripe-mock")
			if mockErr != nil {
				mockErr = fmt.Errorf("stripe-mock not found (set STRIPE_MOCK_BIN or put it on PATH; scripts/test.sh installs it): %w", mockErr)
				return
			}
		}
		httpAddr, err := freePort()
		if err != nil {
			mockErr = err
			return
		}
		httpsAddr, err := freePort()
		if err != nil {
			mockErr = err
			return
		}
		mockCmd = exec.Command(bin, "-http-addr", httpAddr, "-https-addr", httpsAddr)
		if mockErr = mockCmd.Start(); mockErr != nil {
			return
		}
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get("http://" + httpAddr + "/v1/balance")
			if err == nil {
				resp.Body.Close()
				mockURL = "http://" + httpAddr
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		mockErr = fmt.Errorf("stripe-mock did not answer on %s within 60 s", httpAddr)
	})
	if mockErr != nil {
		t.Fatalf("stripe-mock: %v", mockErr)
	}
	return mockURL
}
