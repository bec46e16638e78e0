// Package remote starts napilab's agent for one end of a sweep and hands back the stream package agent speaks
// over: for a local end (`local`, `netns:NAME`) this napilab run as `napilab agent --stdio`, for another host
// (`ssh://[USER@]HOST[:PORT]`) the same command run there by the system's ssh, after napilab made sure it is
// there. From the protocol up every end is the same code path.
//
// # Processes
//
// Each agent, or the ssh that carries it, runs in a process group of its own: Ctrl-C on a terminal signals the
// foreground group, the controller's, alone, and the controller then ends each session in order. The agent
// needs no signal anyway: when its standard input closes (the controller closed it, died, or its ssh died) it
// restores what it holds and exits. Its error output, and ssh's, reach the controller's standard error line by
// line, each line prefixed with the end's name.
//
// # Why the system's ssh
//
// Users already have ssh set up the way their network needs it: ~/.ssh/config with its Host aliases, keys in
// an agent or on a token, certificates, ProxyJump through a bastion, ControlMaster connection sharing, known
// hosts. Go's SSH library (golang.org/x/crypto/ssh) reads none of that, so napilab would either ask for
// everything again or quietly do less; it would also make napilab an ssh client to keep secure. Running the
// ssh binary the user runs gives exactly their setup, and `--ssh CMD` (split as rsync splits -e) and
// `--ssh-option OPT` adjust it. Nothing listens on a port: the tools with a daemon on the remote side
// (netperf, neper, uperf, fio) accept anyone who connects, and iperf3's own authentication has had CVEs.
//
// # Why content addressing
//
// The agent runs from a root-owned CacheRoot/<sha256>/napilab on the remote host. The name is the content:
// a copy that is there is exactly this napilab, so the check is one `test -x` in the same ssh round trip as
// `uname -m` and `id -u`, and nothing is ever compared, versioned or overwritten. Two controllers copying
// the same build at once write two temporary files and rename, atomically, the same content to the same
// name; different builds (a developer's, a release) live side by side without touching each other. A copy
// arrives over ssh's standard input with umask 077, is checked with sha256sum there, and only then renamed
// into place, so a cut transfer never leaves a file under a name it does not match. Only a static executable
// (CGO_ENABLED=0, as `make build` and `make demo` build it) is copied: one linked against this host's C
// library may not start on another. `--agent-path` runs a napilab installed by other means instead; the
// agent's first line and hello then refuse a different version, naming both.
package remote
