// Command hello-go-modules wraps an error with a third-party module, github.com/pkg/errors, which
// osless fetches before the build from the project's GOPROXY directory (deps/goproxy): the build
// itself stays offline.
package main

import (
	"fmt"
	"os"

	"github.com/pkg/errors"
)

func save(name string) error {
	return errors.Wrapf(os.ErrPermission, "saving %s", name)
}

func main() {
	err := errors.Wrap(save("report.txt"), "hello-go-modules")
	fmt.Println(err)
	fmt.Println("cause:", errors.Cause(err))
}
