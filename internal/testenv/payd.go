package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// BuildPayd builds the payd command into dir and returns the executable's
// path, for tests that start payd as a process of its own (paydbench
// --spawn). It is built with the race detector when the test binary is, so
// that those processes are checked as the test is. It needs the go command
// on PATH, as `make test` has it.
func BuildPayd(dir string) (string, error) {
	out := filepath.Join(dir, "payd")
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/payd/payd/cmd/payd")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: go build payd: %w\n%s", err, b)
	}
	return out, nil
}
