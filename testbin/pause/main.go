// Command pause is the real node's pod sandbox process (containerd's sandbox_image): it does nothing and
// exits cleanly on SIGTERM or SIGINT. Built by testbin/build.sh and packed into a one-file image by
// devcluster/images.py, so the node needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
