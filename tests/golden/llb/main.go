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
	"net"
	"strings"
	"time"

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
		if pg := md.ProgressGroup; pg != nil {
			fmt.Fprintf(&b, "progress %s id=%s name=%s weak=%t\n", dgst, pg.Id, pg.Name, pg.Weak)
		}
	}
	if def.Source != nil {
		for _, dgst := range slices.Sorted(maps.Keys(def.Source.Locations)) {
			// Go lists every op with no locations; fbuild leaves those out
			// (see src/llb/marshal.rs for why), and they mean nothing.
			if n := len(def.Source.Locations[dgst].Locations); n > 0 {
				fmt.Fprintf(&b, "source %s locations=%d\n", dgst, n)
			}
			for _, l := range def.Source.Locations[dgst].Locations {
				fmt.Fprintf(&b, "location %s index=%d ranges=%s\n", dgst, l.SourceIndex, ranges(l.Ranges))
			}
		}
		fmt.Fprintf(&b, "source infos=%d\n", len(def.Source.Infos))
		for i, info := range def.Source.Infos {
			fmt.Fprintf(&b, "info %d filename=%s language=%s data=%x definition=%t\n", i, info.Filename, info.Language,
				sha256.Sum256(info.Data), info.Definition != nil)
		}
	}
	return b.String()
}

func ranges(rs []*pb.Range) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d:%d-%d:%d", r.Start.Line, r.Start.Character, r.End.Line, r.End.Character))
	}
	return strings.Join(out, ",")
}

// line is a range covering columns 0-8 of line l.
func line(l int32) []*pb.Range {
	return []*pb.Range{{Start: &pb.Position{Line: l}, End: &pb.Position{Line: l, Character: 8}}}
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
		{"sourcemap", sourcemapGraph()},
		{"exec-ext", execExtGraph(busybox)},
		{"http", llb.HTTP("https://example.com/a.tar.gz", llb.Filename("a.tgz"),
			llb.Checksum(digest.Digest("sha256:"+strings.Repeat("ab", 32))), llb.Chmod(0o755), llb.Chown(1000, 1001))},
		{"git-https", llb.Git("https://github.com/moby/buildkit.git", "v0.12.0:docs/", llb.KeepGitDir(),
			llb.GitChecksum("0123456789abcdef0123456789abcdef01234567"), llb.GitSkipSubmodules())},
		{"git-scp", llb.Git("git@github.com:moby/buildkit.git", "main",
			llb.KnownSSHHosts("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"),
			llb.MountSSHSock("deploy"))},
		{"git-bare", llb.Git("github.com/moby/buildkit", "", llb.AuthTokenSecret("MY_TOKEN"))},
		{"copy-ext", llb.Scratch().File(
			llb.Copy(busybox, "/etc/passwd", "/x/", &llb.CopyInfo{RequiredPaths: []string{"passwd"}, IncludePatterns: []string{"p*"}},
				llb.ChmodOpt{ModeStr: "u+x"}, llb.WithUser("app:grp"), llb.WithCreatedTime(time.Unix(1700000000, 5))).
				Copy(busybox, "/bin/sh", "/y", llb.WithUser("1000:1000"), &llb.ChmodOpt{Mode: 0o755}).
				Mkdir("/d", 0o700, llb.WithUser("app"), llb.WithCreatedTime(time.Unix(1600000000, 0))).
				Mkdir("/e", 0o700, llb.WithUser(":1000")),
		)},
		{"merge", mergeGraph(busybox)},
		{"merge-one", llb.Merge([]llb.State{llb.Scratch(), busybox})},
		{"diff", llb.Diff(busybox, busybox.File(llb.Mkfile("/new", 0o644, []byte("n"))), llb.WithCustomName("diff"))},
		{"diff-to-scratch", llb.Diff(busybox, llb.Scratch())},
		{"diff-from-scratch", llb.Diff(llb.Scratch(), busybox.File(llb.Mkfile("/u", 0o644, nil)))},
		{"git-ssh-url", llb.Git("ssh://git@github.com:22/moby/buildkit.git", "refs/heads/main:/a/../b",
			llb.KnownSSHHosts("h1\n"), llb.GitSubDir("sub"))},
		{"git-upper", llb.Git("HTTPS://user@GitHub.com/Moby/BuildKit?x=1#frag", "", llb.KeepGitDir())},
		{"git-invalid", llb.Git("ftp://example.com/repo.git", "v1")},
		{"exec-hosts", busybox.Run(
			llb.Args([]string{"true"}),
			llb.AddExtraHost("mapped", net.ParseIP("::ffff:1.2.3.4")),
			llb.AddExtraHost("v6", net.ParseIP("2001:db8:0:0:1:0:0:1")),
			llb.AddSecretWithDest("only-env", nil, llb.SecretAsEnvName("ONLY"), llb.SecretOptional),
			llb.With(llb.AddEnv("SSH_AUTH_SOCK", "/mine")),
			llb.AddSSHSocket(),
		).Root()},
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

func sourcemapGraph() llb.State {
	df := []byte("FROM alpine\nRUN echo hi\nCOPY a b\n")
	sm1 := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", df)
	sm1b := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", df) // same file, another object
	sm2 := llb.NewSourceMap(nil, "docker-bake.hcl", "HCL", []byte("target {}"))
	base := llb.Image("alpine", sm2.Location(line(1)))
	run := base.Run(
		llb.Args([]string{"/bin/sh", "-c", "echo hi"}),
		llb.WithCustomName("RUN echo hi"),
		llb.WithDescription(map[string]string{"com.docker.dockerfile.v1.command": "RUN echo hi"}),
		llb.ProgressGroup("stage-0", "build", false),
		sm1.Location(line(2)),
	).Root()
	return run.File(llb.Mkfile("/b", 0o644, []byte("b")), sm1b.Location(append(line(3), line(4)...)),
		llb.ProgressGroup("stage-0", "build", true))
}

func execExtGraph(busybox llb.State) llb.State {
	cacheBase := llb.Scratch().File(llb.Mkdir("/c", 0o755, llb.WithUIDGID(1000, 1000)))
	return busybox.Run(
		llb.Args([]string{"/bin/sh", "-c", "true"}),
		llb.AddSecret("/run/secrets/tok", llb.SecretID("tok"), llb.SecretFileOpt(1000, 1000, 0o400), llb.SecretOptional),
		llb.AddSecretWithDest("envsec", nil, llb.SecretAsEnvName("TOKEN")),
		llb.AddSSHSocket(llb.SSHID("default"), llb.SSHSocketOpt("", 0, 0, 0o600)),
		llb.AddSSHSocket(llb.SSHID("deploy"), llb.SSHSocketOpt("/tmp/ssh.sock", 1000, 1000, 0o600), llb.SSHOptional),
		llb.Security(llb.SecurityModeInsecure),
		llb.Hostname("builder"),
		llb.AddExtraHost("db", net.ParseIP("10.0.0.2")),
		llb.AddExtraHost("v6", net.ParseIP("fe80::1")),
		llb.AddUlimit(llb.UlimitNofile, 1024, 2048),
		llb.ValidExitCodes(0, 1),
		llb.WithProxy(llb.ProxyEnv{HTTPProxy: "http://proxy:3128", NoProxy: "localhost"}),
		llb.Network(llb.NetModeHost),
		llb.AddMount("/tmp", llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(1<<20))),
		llb.AddMount("/out", llb.Scratch(), llb.ForceNoOutput),
		llb.AddMount("/cache", cacheBase, llb.AsPersistentCacheDir("c2", llb.CacheMountShared), llb.SourcePath("/c")),
		llb.AddMount("/src", busybox, llb.Readonly, llb.SourcePath("/etc")),
		llb.AddMount("/data", llb.Scratch()),
	).GetMount("/data")
}

func mergeGraph(busybox llb.State) llb.State {
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", []byte("FROM busybox\n"))
	a := llb.Image("busybox", sm.Location(line(1)))
	b := llb.Image("busybox", sm.Location(line(1))) // same op, another object: two locations
	return llb.Merge([]llb.State{a, llb.Scratch(), b, busybox.File(llb.Mkfile("/m", 0o644, []byte("m")))},
		llb.WithCustomName("merge"))
}
