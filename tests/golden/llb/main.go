// Prints what Go's client/llb (BuildKit v0.32.2) marshals for the graphs
// that src/llb/tests.rs builds the same way: per graph, the digest of the
// result op (Definition.Head) and the sha256 of a summary of the whole
// definition. With -v, the summaries too. Run it with ./run.sh.
//
// The summary lists the digest of every op in definition order (so op bytes
// and order are pinned), then per op digest its metadata (capabilities,
// descriptions, ignore-cache) and its source-map entry when it has locations. Definition bytes
// themselves cannot be compared: Go's Definition.Marshal (vtprotobuf) writes
// maps in random order, and protobuf-go and prost disagree on whether an
// empty message value in a map entry is written, while both decode alike.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

func summary(def *pb.Definition) string {
	var b strings.Builder
	for _, dt := range def.Def {
		fmt.Fprintf(&b, "op %s\n", digest.FromBytes(dt))
	}
	for _, dgst := range slices.Sorted(maps.Keys(def.Metadata)) {
		md := def.Metadata[dgst]
		var desc []string
		for _, k := range slices.Sorted(maps.Keys(md.Description)) {
			desc = append(desc, k+"="+md.Description[k])
		}
		fmt.Fprintf(&b, "meta %s ignore-cache=%t caps=%s description=%s\n", dgst, md.IgnoreCache,
			strings.Join(slices.Sorted(maps.Keys(md.Caps)), ","), strings.Join(desc, ","))
	}
	if def.Source != nil {
		for _, dgst := range slices.Sorted(maps.Keys(def.Source.Locations)) {
			// Go lists every op with no locations; fbuild leaves those out
			// (see src/llb/marshal.rs for why), and they mean nothing.
			if n := len(def.Source.Locations[dgst].Locations); n > 0 {
				fmt.Fprintf(&b, "source %s locations=%d\n", dgst, n)
			}
		}
		fmt.Fprintf(&b, "source infos=%d\n", len(def.Source.Infos))
	}
	return b.String()
}

func main() {
	verbose := flag.Bool("v", false, "also print each definition's summary")
	flag.Parse()
	ctx := context.Background()
	busybox := llb.Image("busybox")
	graphs := []struct {
		name  string
		state llb.State
	}{
		{"image", busybox},
		{"mkfile", busybox.File(llb.Mkfile("/hello", 0o644, []byte("hi\n")))},
		{"run", busybox.AddEnv("A", "1").Dir("/work").Run(llb.Args([]string{"/bin/sh", "-c", "echo hi > /hi"})).Root()},
		{"copy", llb.Scratch().File(
			llb.Mkdir("/out", 0o755, llb.WithParents(true)).
				Copy(busybox.Dir("/bin"), "busybox", "out/", &llb.CopyInfo{CreateDestPath: true}),
		)},
		{"mounts", busybox.Run(
			llb.Args([]string{"/bin/true"}),
			llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs()),
			llb.AddMount("/data", llb.Scratch()),
			llb.AddMount("/etc/ro", busybox, llb.Readonly),
			llb.AddMount("/cache", llb.Scratch(), llb.AsPersistentCacheDir("c1", llb.CacheMountLocked)),
		).GetMount("/data")},
		{"local", llb.Local("context", llb.SessionID("s1"), llb.IncludePatterns([]string{"a", "b<c"}))},
	}
	for _, g := range graphs {
		def, err := g.state.Marshal(ctx, llb.LinuxAmd64)
		if err != nil {
			panic(err)
		}
		head, err := def.Head()
		if err != nil {
			panic(err)
		}
		s := summary(def.ToPB())
		fmt.Printf("%s %s sha256:%x\n", g.name, head, sha256.Sum256([]byte(s)))
		if *verbose {
			fmt.Print(s)
		}
	}
}
