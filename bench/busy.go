package bench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
)

// SpinCommand is the hidden subcommand a busy process runs (`warden bench
// spin`): Spin, until its standard input closes.
const SpinCommand = "spin"

// Spin keeps one core busy until stdin reaches EOF (the parent closed it
// or died), then returns. It is the load a benchmark's Busy option puts on
// the machine's other cores, in another process as a neighbour would.
func Spin() {
	runtime.GOMAXPROCS(1)
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	for x := uint64(1); ; x = x*6364136223846793005 + 1442695040888963407 {
		if x&0xffff == 0 {
			select {
			case <-done:
				return
			default:
			}
		}
	}
}

// startBusy starts n processes that each keep one core busy (Spin), and
// returns the function that stops them.
func startBusy(n int) (stop func(), err error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var procs []*exec.Cmd
	var pipes []io.Closer
	stop = func() {
		for _, p := range pipes {
			p.Close()
		}
		for _, c := range procs {
			c.Process.Kill()
			c.Wait()
		}
	}
	for range n {
		c := exec.Command(bin, "bench", SpinCommand)
		in, err := c.StdinPipe()
		if err != nil {
			stop()
			return nil, err
		}
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("bench: start a busy process: %w", err)
		}
		procs, pipes = append(procs, c), append(pipes, in)
	}
	return stop, nil
}
