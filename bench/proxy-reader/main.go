// Reads one blob through containerd's own content proxy (content/proxy, the code `ctr content
// get` and BuildKit read a remote content store with): an Info, then ReadAt calls of a fixed
// size in order. The bench drives the daemon with it so that the proxy-pattern rows measure the
// daemon against containerd's Go client rather than against a Node imitation of it.
//
// Usage: proxy-reader <unix socket> <namespace> <digest> <call bytes>
// Prints one JSON line: the bytes read, the seconds from the Info to the last byte, and this
// process's CPU seconds (all threads).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/namespaces"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "proxy-reader: "+format+"\n", a...)
	os.Exit(1)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: proxy-reader <unix socket> <namespace> <digest> <call bytes>")
	}
	socket, namespace, dgst := os.Args[1], os.Args[2], digest.Digest(os.Args[3])
	callBytes, err := strconv.Atoi(os.Args[4])
	if err != nil || callBytes <= 0 {
		fail("call bytes must be a positive integer, got %q", os.Args[4])
	}
	// grpc-go of Debian's containerd 1.6 still spells plaintext this way
	conn, err := grpc.Dial("unix://"+socket, grpc.WithInsecure())
	if err != nil {
		fail("dial %s: %v", socket, err)
	}
	defer conn.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	store := proxy.NewContentStore(contentapi.NewContentClient(conn))

	cpuBefore := cpuSeconds()
	start := time.Now()
	info, err := store.Info(ctx, dgst)
	if err != nil {
		fail("info %s: %v", dgst, err)
	}
	ra, err := store.ReaderAt(ctx, ocispec.Descriptor{Digest: info.Digest, Size: info.Size})
	if err != nil {
		fail("reader %s: %v", dgst, err)
	}
	buf := make([]byte, callBytes)
	var offset int64
	for offset < info.Size {
		want := buf
		if left := info.Size - offset; left < int64(len(want)) {
			want = want[:left]
		}
		n, err := ra.ReadAt(want, offset)
		offset += int64(n)
		if err != nil {
			fail("read at %d: %v", offset, err)
		}
	}
	seconds := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]float64{"bytes": float64(offset), "seconds": seconds, "cpu": cpuSeconds() - cpuBefore})
	fmt.Println(string(out))
}
