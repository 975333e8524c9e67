package command

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// NewFlagSet is a command's flag set: its errors and --help go to out, the
// help as usage followed by the flags. Parse errors are returned rather than
// exiting, so that a command can be run from a test.
func NewFlagSet(name string, out io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs. help is true when args asked for --help, which
// fs has printed: the command has nothing more to do, and it is no error.
func Parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return false, err
}
