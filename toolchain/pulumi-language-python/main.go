// Command pulumi-language-python is the Pulumi language host for Python
// programs, for machines that build their Pulumi toolchain from Go modules.
//
// The engine starts it as a plugin and talks to it over the LanguageRuntime
// gRPC service. Toolchain handling (pip virtualenvs, uv, poetry) comes from the
// Python SDK's own toolchain package, and programs run through
// pulumi-language-python-exec, the launcher shipped with the Python SDK, which
// must sit beside this binary. The upstream host lives in a Go module that the
// module proxy does not serve at a pinned commit, hence this build.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is stamped at build time with -ldflags -X main.version=...
var version = "0.0.0-dev"

const executorName = "pulumi-language-python-exec"

// exitCodeReported is how the executor says it has already shown the user an
// actionable error, so the engine should not print a second one.
const exitCodeReported = 32

// discoverPlugins runs inside the program's interpreter and lists the
// resource plugins its installed packages declare in pulumi-plugin.json.
// Provider SDKs keep that file in their top-level package, so it looks there
// first; only a file without a name or version sends it through the
// distributions' file lists (reading every RECORD costs a quarter second of
// CPU in a large virtualenv, on every preview).
const discoverPlugins = `
import glob, json, os, re, sys
found = {}
def add(data, name, version):
    found[(name, version)] = {
        "name": name,
        "version": version,
        "server": data.get("server") or "",
        "parameterization": data.get("parameterization"),
    }
incomplete = set()
for entry in sys.path:
    if not entry or not os.path.isdir(entry):
        continue
    for path in glob.glob(os.path.join(glob.escape(entry), "*", "pulumi-plugin.json")):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not data.get("resource"):
            continue
        if data.get("name") and data.get("version"):
            add(data, data["name"], data["version"])
        else:
            incomplete.add(os.path.realpath(path))
if incomplete:
    import importlib.metadata
    for dist in importlib.metadata.distributions():
        for f in dist.files or ():
            if f.name != "pulumi-plugin.json" or os.path.realpath(f.locate()) not in incomplete:
                continue
            data = json.loads(f.read_text())
            name = data.get("name") or re.sub(r"^pulumi[-_]", "", dist.metadata["Name"]).lower()
            add(data, name, data.get("version") or dist.version)
print(json.dumps(list(found.values())))
`

type pluginSpec struct {
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   []byte `json:"value"`
	} `json:"parameterization"`
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	engineAddress string
	tracing       string
	executor      string
}

func main() {
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	obsoleteFlags(flag.CommandLine)
	flag.Parse()
	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", *tracing)
	defer cmdutil.CloseTracing()

	if err := run(*tracing, flag.Args()); err != nil {
		cmdutil.Exit(err)
	}
}

// obsoleteFlags accepts, and ignores, the flags older Go SDKs pass to a
// language host they start: `-root` and one `-KEY=VALUE` per runtime option.
// The YAML language host (pulumi-yaml 1.25, on sdk/v3 3.206) starts this one
// that way to load a Python component package's schema. The same options
// reach every call in its ProgramInfo; upstream's host declares these flags
// too.
func obsoleteFlags(fs *flag.FlagSet) {
	fs.String("root", "", "[obsolete] Project root path to use")
	fs.String("virtualenv", "", "[obsolete] Virtual environment path to use")
	fs.String("toolchain", "pip", "[obsolete] Select the package manager to use for dependency management")
	fs.String("typechecker", "", "[obsolete] Use a typechecker to type check")
}

func run(tracing string, args []string) error {
	executor, err := findExecutor()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var engineAddress string
	if len(args) > 0 {
		engineAddress = args[0]
		// Exit when the engine goes away instead of lingering as an orphan.
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("could not start health check against the engine: %w", err)
		}
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	host := &languageHost{engineAddress: engineAddress, tracing: tracing, executor: executor}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		return fmt.Errorf("could not start language host RPC server: %w", err)
	}

	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	return <-handle.Done
}

// findExecutor locates the SDK's launcher next to this binary, falling back
// to PATH for layouts that keep the two apart.
func findExecutor() (string, error) {
	if self, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			candidate := filepath.Join(filepath.Dir(resolved), executorName)
			if info, err := os.Stat(candidate); err == nil && info.Mode()&0o111 != 0 {
				return candidate, nil
			}
		}
	}
	path, err := exec.LookPath(executorName)
	if err != nil {
		return "", fmt.Errorf("missing executor %s: install it beside pulumi-language-python", executorName)
	}
	return path, nil
}

// options is the `runtime.options` block of Pulumi.yaml.
type options struct {
	toolchain   toolchain.PythonOptions
	typechecker string
}

func parseOptions(info *pulumirpc.ProgramInfo) (options, error) {
	if info == nil {
		return options{}, errors.New("the engine sent no program information")
	}
	opts := options{toolchain: toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Pip,
	}}
	raw := info.GetOptions().AsMap()

	if v, ok := raw["virtualenv"].(string); ok {
		opts.toolchain.Virtualenv = v
	}
	switch tc, _ := raw["toolchain"].(string); tc {
	case "", "pip":
		opts.toolchain.Toolchain = toolchain.Pip
	case "uv":
		opts.toolchain.Toolchain = toolchain.Uv
	case "poetry":
		opts.toolchain.Toolchain = toolchain.Poetry
	default:
		return options{}, fmt.Errorf("unsupported Python toolchain %q (expected pip, uv or poetry)", tc)
	}
	switch tc, _ := raw["typechecker"].(string); tc {
	case "":
	case "mypy", "pyright":
		opts.typechecker = tc
	default:
		return options{}, fmt.Errorf("unsupported Python typechecker %q (expected mypy or pyright)", tc)
	}
	return opts, nil
}

func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, options, error) {
	opts, err := parseOptions(info)
	if err != nil {
		return nil, opts, err
	}
	tc, err := toolchain.ResolveToolchain(opts.toolchain)
	if err != nil {
		return nil, opts, err
	}
	return tc, opts, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", discoverPlugins)
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing Pulumi plugins of installed packages: %w: %s", err, stderr.String())
	}
	var specs []pluginSpec
	if err := json.Unmarshal(out, &specs); err != nil {
		return nil, fmt.Errorf("reading plugin list: %w", err)
	}

	packages := make([]*pulumirpc.PackageDependency, 0, len(specs))
	for _, s := range specs {
		dep := &pulumirpc.PackageDependency{
			Name:    s.Name,
			Kind:    "resource",
			Version: s.Version,
			Server:  s.Server,
		}
		if p := s.Parameterization; p != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{
				Name: p.Name, Version: p.Version, Value: p.Value,
			}
		}
		packages = append(packages, dep)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, opts, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	if opts.typechecker != "" {
		if failure := typecheck(ctx, tc, opts.typechecker, req.GetInfo().GetProgramDirectory()); failure != "" {
			return &pulumirpc.RunResponse{Error: failure}, nil
		}
	}

	// The SDK expects a JSON object and a JSON list even when they are empty;
	// nil would marshal to null.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, err
	}
	keys := req.GetConfigSecretKeys()
	if keys == nil {
		keys = []string{}
	}
	secretKeys, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}

	args := []string{
		"-c", quickExit, h.executor,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engineAddress,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
		"--organization", req.GetOrganization(),
		"--root_directory", req.GetInfo().GetRootDirectory(),
	}
	if h.tracing != "" {
		args = append(args, "--tracing", h.tracing)
	}
	args = append(args, req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	cmd.Env = append(cmd.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
		"PULUMI_PROJECT="+req.GetProject(),
		"PULUMI_STACK="+req.GetStack(),
		"PULUMI_ORGANIZATION="+req.GetOrganization(),
		"PULUMI_DRY_RUN="+strconv.FormatBool(req.GetDryRun()),
		"PULUMI_PARALLEL="+strconv.Itoa(int(req.GetParallel())),
		"PULUMI_MONITOR="+req.GetMonitorAddress(),
		"PULUMI_ENGINE="+h.engineAddress,
		// The engine shows plugin output as it arrives; buffering would
		// delay prints from the program until it exits.
		"PYTHONUNBUFFERED=1",
	)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeReported {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// typecheck runs the configured checker over the program directory and
// returns its complaint, or "" when the program type-checks.
func typecheck(ctx context.Context, tc toolchain.Toolchain, checker, dir string) string {
	cmd, err := tc.ModuleCommand(ctx, checker, dir)
	if err != nil {
		return fmt.Sprintf("%s is not available in the virtual environment: %v", checker, err)
	}
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s failed:\n%s", checker, out)
	}
	return ""
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	stdout := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	stderr := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	ctx := server.Context()
	dir := req.GetInfo().GetProgramDirectory()
	return tc.InstallDependencies(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

// quickExit runs the executor as Python would run the script, and once the
// program has succeeded, flushes its output and leaves without tearing the
// interpreter down: freeing the SDK's and providers' modules and closing the
// gRPC channels costs half a second of CPU on every preview and update, after
// every resource is registered and before the engine can go on. So atexit
// handlers of a program run only when it fails.
const quickExit = `
import os, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as e:
    code = e.code
if code in (0, None):
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)
sys.exit(code)
`

// aboutScript prints the interpreter's path and version from one process.
// The SDK toolchain's About starts three interpreters for these two facts and
// pip's version, which the engine does not use, and the engine waits for it
// before every preview and update.
const aboutScript = "import platform, sys; print(sys.executable); print(platform.python_version())"

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", aboutScript)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("asking the Python interpreter about itself: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	resp := &pulumirpc.AboutResponse{Executable: strings.TrimSpace(lines[0])}
	if len(lines) > 1 {
		if v, err := toolchain.ParsePythonVersion(lines[len(lines)-1]); err == nil {
			resp.Version = v.String()
		}
	}
	return resp, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	out := make([]*pulumirpc.DependencyInfo, 0, len(deps))
	for _, d := range deps {
		out = append(out, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: out}, nil
}

// streamWriter forwards installer output to the engine as it is produced.
type streamWriter struct {
	send func([]byte) error
}

var _ io.Writer = (*streamWriter)(nil)

func (w *streamWriter) Write(p []byte) (int, error) {
	// The gRPC message keeps a reference, so hand it a copy.
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RunPlugin runs a plugin written in Python, such as a policy pack: the
// plugin directory (its __main__.py) in the plugin's virtualenv, with the
// output streamed to the engine and the exit code sent last.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	tc, _, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	args := append([]string{"-u", req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)
	cmd, err := tc.Command(server.Context(), args...)
	if err != nil {
		return err
	}
	cmd.Dir = req.GetPwd()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, req.GetEnv()...)

	// A gRPC stream takes one Send at a time; stdout and stderr are copied
	// by separate goroutines.
	var mu sync.Mutex
	send := func(resp *pulumirpc.RunPluginResponse) error {
		mu.Lock()
		defer mu.Unlock()
		return server.Send(resp)
	}
	cmd.Stdout = &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}})
	}}
	cmd.Stderr = &streamWriter{send: func(b []byte) error {
		return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}})
	}}
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return err
		}
		code = exit.ExitCode()
	}
	return send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
}
