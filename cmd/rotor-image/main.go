// Command rotor-image writes rotor's container image as an OCI image
// layout, without a container daemon: `make image` runs it on the static
// binary it builds. Load the result with skopeo or podman (docs/deploy.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/rotorhq/rotor/internal/image"
)

func main() {
	var opts image.Options
	out := flag.String("out", "bin/image", "directory of the OCI image layout (replaced)")
	ref := flag.String("ref", "rotor:dev", "name recorded in the layout's index")
	epoch := flag.Int64("created", 0, "creation time, seconds since the epoch (default $SOURCE_DATE_EPOCH, else 0: reproducible)")
	flag.StringVar(&opts.Binary, "binary", "bin/rotor-linux", "static linux rotor binary")
	flag.StringVar(&opts.CACerts, "ca", "", "CA bundle to include (default /etc/ssl/certs/ca-certificates.crt)")
	flag.StringVar(&opts.Version, "version", "dev", "version label")
	flag.StringVar(&opts.Revision, "revision", "", "VCS revision label")
	flag.StringVar(&opts.Arch, "arch", "amd64", "architecture of the binary")
	flag.Parse()
	if *epoch == 0 {
		if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			if _, err := fmt.Sscan(v, epoch); err != nil {
				fail(fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", v))
			}
		}
	}
	opts.Created = time.Unix(*epoch, 0)
	img, err := image.Build(opts)
	if err != nil {
		fail(err)
	}
	if err := image.WriteLayout(*out, img, *ref); err != nil {
		fail(err)
	}
	d, err := img.Digest()
	if err != nil {
		fail(err)
	}
	fmt.Printf("wrote %s (%s, %s)\n", *out, *ref, d)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rotor-image:", err)
	os.Exit(1)
}
