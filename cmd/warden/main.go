// Command warden is the governance and incident-response control plane for
// autonomous AI agents. This file only wires: see package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/warden-sh/warden/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
