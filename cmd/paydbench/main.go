// Command paydbench is payd's load driver and benchmark harness
// (docs/BENCHMARKS.md; paydbench -h for its flags). It only wires: the
// flags into bench.Options, the payd settings it needs from the environment
// payd reads into bench.Config, and bench.Run. It is a binary of its own so
// that the payd server links neither the harness nor its chart libraries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/payd/payd/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "paydbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	o, err := bench.ParseFlags(args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := loadConfig(getenv, os.Environ())
	if err != nil {
		return err
	}
	return bench.Run(ctx, cfg, o, stdout)
}
