package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Process is one targetlock binary run as a child process, with its output
// in a log file.
type Process struct {
	Name string
	// Env is added to the inherited environment at each Start.
	Env  []string
	path string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
}

// NewProcess describes a process that logs to logDir/name.log; Start runs it.
func NewProcess(name, path, logDir string, args ...string) *Process {
	return &Process{Name: name, path: path, args: args, log: filepath.Join(logDir, name+".log")}
}

// Start runs the process; it appends to its log file.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan error, 1)
	go func() {
		done <- cmd.Wait()
		_ = f.Close()
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Stop asks the process to exit (SIGTERM) and waits up to 10s, then kills it.
func (p *Process) Stop() error { return p.signal(syscall.SIGTERM, 10*time.Second) }

// Kill ends the process at once (SIGKILL), as a crashed node would.
func (p *Process) Kill() error { return p.signal(syscall.SIGKILL, 10*time.Second) }

// Restart kills the process and starts it again.
func (p *Process) Restart() error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.Start()
}

func (p *Process) signal(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		err = <-p.done
	}
	p.cmd = nil
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // it exited because we asked
	}
	return err
}

// Pid is the running process's id, or 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log is the path of the process's log file.
func (p *Process) Log() string { return p.log }
