// Reads one blob from a content service with containerd's own Go client, in one of two patterns:
//
//	proxy  through containerd's content proxy (content/proxy, the code `ctr content get` and
//	       BuildKit read a remote content store with): its ReaderAt's Info, then ReadAt calls
//	       of a fixed size in order, each call's stream dropped once the buffer is full;
//	calls  an Info, then Read calls of a fixed size in order with the generated client, each
//	       received to its end (the bench's "sequential Reads").
//
// The bench drives the daemon with it so that rows of many calls measure the daemon against the
// client containerd's ecosystem uses rather than against a Node imitation of it.
//
// Usage: containerd-client <proxy|calls> <unix socket> <namespace> <digest> <call bytes>
// Prints one JSON line: the bytes read, the seconds from the first call to the last byte, and
// this process's CPU seconds (all threads) over the same span.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	fmt.Fprintf(os.Stderr, "containerd-client: "+format+"\n", a...)
	os.Exit(1)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// viaProxy reads as containerd's proxy ReaderAt is read by io.Copy or content.ReadBlob.
func viaProxy(ctx context.Context, client contentapi.ContentClient, dgst digest.Digest, callBytes int) int64 {
	// as `ctr content get` asks: the ReaderAt's own Info gives the size
	ra, err := proxy.NewContentStore(client).ReaderAt(ctx, ocispec.Descriptor{Digest: dgst})
	if err != nil {
		fail("reader %s: %v", dgst, err)
	}
	size := ra.Size()
	buf := make([]byte, callBytes)
	var offset int64
	for offset < size {
		want := buf
		// a reader of known size asks no more than is left (io.SectionReader, content.ReadBlob)
		if left := size - offset; left < int64(len(want)) {
			want = want[:left]
		}
		n, err := ra.ReadAt(want, offset)
		offset += int64(n)
		if err != nil {
			fail("read at %d: %v", offset, err)
		}
	}
	return offset
}

// inCalls reads with one Read call per callBytes, each stream received until the server ends it.
func inCalls(ctx context.Context, client contentapi.ContentClient, dgst digest.Digest, callBytes int) int64 {
	info, err := client.Info(ctx, &contentapi.InfoRequest{Digest: dgst})
	if err != nil {
		fail("info %s: %v", dgst, err)
	}
	var offset int64
	for offset < info.Info.Size_ {
		stream, err := client.Read(ctx, &contentapi.ReadContentRequest{Digest: dgst, Offset: offset, Size_: int64(callBytes)})
		if err != nil {
			fail("read at %d: %v", offset, err)
		}
		start := offset
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fail("read at %d: %v", offset, err)
			}
			offset += int64(len(resp.Data))
		}
		// a call that ends with nothing short of the size would be asked again for ever
		if offset == start {
			fail("read at %d of %d: the call ended with no bytes", offset, info.Info.Size_)
		}
	}
	return offset
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: containerd-client <proxy|calls> <unix socket> <namespace> <digest> <call bytes>")
	}
	mode, socket, namespace, dgst := os.Args[1], os.Args[2], os.Args[3], digest.Digest(os.Args[4])
	callBytes, err := strconv.Atoi(os.Args[5])
	if err != nil || callBytes <= 0 {
		fail("call bytes must be a positive integer, got %q", os.Args[5])
	}
	read := map[string]func(context.Context, contentapi.ContentClient, digest.Digest, int) int64{"proxy": viaProxy, "calls": inCalls}[mode]
	if read == nil {
		fail("mode must be proxy or calls, got %q", mode)
	}
	// connected before the clock starts, as containerd's client dials (WithBlock); grpc-go of
	// Debian's containerd 1.6 still spells plaintext WithInsecure
	dialCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dialCtx, "unix://"+socket, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail("dial %s: %v", socket, err)
	}
	defer conn.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)

	cpuBefore := cpuSeconds()
	start := time.Now()
	bytes := read(ctx, contentapi.NewContentClient(conn), dgst, callBytes)
	seconds := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]float64{"bytes": float64(bytes), "seconds": seconds, "cpu": cpuSeconds() - cpuBefore})
	fmt.Println(string(out))
}
