package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/protobuf/types/known/structpb"
)

func programInfo(t *testing.T, opts map[string]any) *pulumirpc.ProgramInfo {
	t.Helper()
	s, err := structpb.NewStruct(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &pulumirpc.ProgramInfo{RootDirectory: "/proj", ProgramDirectory: "/proj/src", EntryPoint: ".", Options: s}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		opts        map[string]any
		toolchain   any
		virtualenv  string
		typechecker string
	}{
		{name: "defaults to pip without a virtualenv", opts: map[string]any{}, toolchain: toolchain.Pip},
		{name: "pip with virtualenv", opts: map[string]any{"virtualenv": "venv"}, toolchain: toolchain.Pip, virtualenv: "venv"},
		{name: "uv", opts: map[string]any{"toolchain": "uv"}, toolchain: toolchain.Uv},
		{name: "poetry", opts: map[string]any{"toolchain": "poetry"}, toolchain: toolchain.Poetry},
		{name: "mypy", opts: map[string]any{"typechecker": "mypy"}, toolchain: toolchain.Pip, typechecker: "mypy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseOptions(programInfo(t, tc.opts))
			if err != nil {
				t.Fatalf("parseOptions: %v", err)
			}
			if got.toolchain.Toolchain != tc.toolchain {
				t.Errorf("toolchain = %v, want %v", got.toolchain.Toolchain, tc.toolchain)
			}
			if got.toolchain.Virtualenv != tc.virtualenv {
				t.Errorf("virtualenv = %q, want %q", got.toolchain.Virtualenv, tc.virtualenv)
			}
			if got.typechecker != tc.typechecker {
				t.Errorf("typechecker = %q, want %q", got.typechecker, tc.typechecker)
			}
			if got.toolchain.Root != "/proj" || got.toolchain.ProgramDir != "/proj/src" {
				t.Errorf("directories = %q, %q", got.toolchain.Root, got.toolchain.ProgramDir)
			}
		})
	}
}

func TestParseOptionsRejectsUnknownValues(t *testing.T) {
	t.Parallel()
	for _, opts := range []map[string]any{
		{"toolchain": "pipenv"},
		{"typechecker": "pytype"},
	} {
		if _, err := parseOptions(programInfo(t, opts)); err == nil {
			t.Errorf("parseOptions(%v) succeeded, want an error", opts)
		}
	}
	if _, err := parseOptions(nil); err == nil {
		t.Error("parseOptions(nil) succeeded, want an error")
	}
}

func TestStreamWriterCopiesEachChunk(t *testing.T) {
	t.Parallel()
	var sent [][]byte
	w := &streamWriter{send: func(b []byte) error {
		sent = append(sent, b)
		return nil
	}}
	buf := []byte("first")
	if _, err := w.Write(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX")
	if string(sent[0]) != "first" {
		t.Errorf("sent chunk changed with the caller's buffer: %q", sent[0])
	}
}

// TestDiscoverPlugins runs the discovery script against a site-packages
// directory holding provider SDKs, a policy SDK and one plain package.
func TestDiscoverPlugins(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	site := t.TempDir()
	writeDist := func(dist, pkg, version, pluginJSON string) {
		info := filepath.Join(site, dist+"-"+version+".dist-info")
		files := []string{"METADATA", "RECORD"}
		if pluginJSON != "" {
			files = append(files, pkg+"/pulumi-plugin.json")
			if err := os.MkdirAll(filepath.Join(site, pkg), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(site, pkg, "pulumi-plugin.json"), []byte(pluginJSON), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(info, 0o755); err != nil {
			t.Fatal(err)
		}
		metadata := "Metadata-Version: 2.1\nName: " + dist + "\nVersion: " + version + "\n"
		if err := os.WriteFile(filepath.Join(info, "METADATA"), []byte(metadata), 0o600); err != nil {
			t.Fatal(err)
		}
		var record strings.Builder
		for _, f := range files {
			if f == "METADATA" || f == "RECORD" {
				f = filepath.Base(info) + "/" + f
			}
			record.WriteString(f + ",,\n")
		}
		if err := os.WriteFile(filepath.Join(info, "RECORD"), []byte(record.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeDist("pulumi_kubernetes", "pulumi_kubernetes", "4.24.1", `{"resource": true, "name": "kubernetes", "version": "4.24.1"}`)
	writeDist("pulumi_random", "pulumi_random", "4.21.4", `{"resource": true}`)
	writeDist("pulumi_policy", "pulumi_policy", "1.0.0", `{"resource": false}`)
	writeDist("pyyaml", "yaml", "6.0.3", "")
	// A package whose file list does not name its plugin file (as an
	// editable install's does not) is found by its package directory.
	if err := os.MkdirAll(filepath.Join(site, "pulumi_docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	dockerJSON := `{"resource": true, "name": "docker", "version": "5.2.0"}`
	if err := os.WriteFile(filepath.Join(site, "pulumi_docker", "pulumi-plugin.json"), []byte(dockerJSON), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(python, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); exec(sys.argv[2])", site, discoverPlugins)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("discovery failed: %v", err)
	}
	var specs []pluginSpec
	if err := json.Unmarshal(out, &specs); err != nil {
		t.Fatalf("discovery printed %q: %v", out, err)
	}
	got := map[string]string{}
	for _, s := range specs {
		got[s.Name] = s.Version
	}
	want := map[string]string{"kubernetes": "4.24.1", "random": "4.21.4", "docker": "5.2.0"}
	if len(got) != len(want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	for name, version := range want {
		if got[name] != version {
			t.Errorf("plugin %s version = %q, want %q (all: %v)", name, got[name], version, got)
		}
	}
}

// TestAboutReportsTheInterpreter asks about the python3 on PATH, as a
// program without a virtualenv runs.
func TestAboutReportsTheInterpreter(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	want, err := exec.Command(python, "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		t.Fatal(err)
	}
	h := &languageHost{}
	resp, err := h.About(context.Background(), &pulumirpc.AboutRequest{Info: programInfo(t, map[string]any{})})
	if err != nil {
		t.Fatalf("About: %v", err)
	}
	if resp.Executable == "" || !filepath.IsAbs(resp.Executable) {
		t.Errorf("executable = %q, want an absolute path", resp.Executable)
	}
	if resp.Version != strings.TrimSpace(string(want)) {
		t.Errorf("version = %q, want %q", resp.Version, strings.TrimSpace(string(want)))
	}
}

// TestQuickExit runs scripts through the launcher that starts the executor:
// output is flushed and exit codes kept, and the interpreter's teardown is
// skipped only after success.
func TestQuickExit(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH")
	}
	cases := []struct {
		name, body string
		code       int
		stdout     string
	}{
		{"success", "import atexit, sys\natexit.register(print, 'teardown')\nsys.stdout.write('done')\n", 0, "done"},
		{"sys.exit(0)", "import sys\nprint('ok', sys.argv[1:])\nsys.exit(0)\n", 0, "ok ['--flag', 'x']\n"},
		{"failure", "import atexit, sys\natexit.register(print, 'teardown')\nsys.exit(3)\n", 3, "teardown\n"},
		{"main guard", "if __name__ == '__main__':\n    print(__file__.endswith('.py'))\n", 0, "True\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			script := filepath.Join(t.TempDir(), "script.py")
			if err := os.WriteFile(script, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(python, "-c", quickExit, script, "--flag", "x").Output()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || string(out) != tc.stdout {
				t.Errorf("exit %d, stdout %q; want exit %d, stdout %q", code, out, tc.code, tc.stdout)
			}
		})
	}
}

func TestObsoleteFlagsAreAccepted(t *testing.T) {
	fs := flag.NewFlagSet("pulumi-language-python", flag.ContinueOnError)
	fs.String("tracing", "", "")
	obsoleteFlags(fs)
	args := []string{"-toolchain=pip", "-virtualenv=venv", "-typechecker=mypy", "-root=/proj", "127.0.0.1:1234"}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	if got := fs.Args(); len(got) != 1 || got[0] != "127.0.0.1:1234" {
		t.Fatalf("positional arguments = %v, want the engine address only", got)
	}
}
