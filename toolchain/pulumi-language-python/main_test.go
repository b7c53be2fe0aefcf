package main

import (
	"encoding/json"
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
// directory holding one provider SDK and one plain package.
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
	want := map[string]string{"kubernetes": "4.24.1", "random": "4.21.4"}
	if len(got) != len(want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	for name, version := range want {
		if got[name] != version {
			t.Errorf("plugin %s version = %q, want %q (all: %v)", name, got[name], version, got)
		}
	}
}
