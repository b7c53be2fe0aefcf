// Command smoke is the workload of the cluster's smoke test: a small HTTP
// server that names the pod answering, and a client that fetches a URL
// with a deadline (the test's probe of a flow being open or blocked).
//
//	smoke serve [-addr :8080]
//	smoke get [-timeout 3s] URL
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: smoke serve [-addr :8080] | smoke get [-timeout 3s] URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "get":
		os.Exit(get(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "smoke: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) int {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := flags.String("addr", ":8080", "listen address")
	_ = flags.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	server := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("smoke: serving on %s as %s\n", *addr, host)
	if err := server.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		return 1
	}
	return 0
}

func get(args []string) int {
	flags := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := flags.Duration("timeout", 3*time.Second, "deadline for the whole request")
	_ = flags.Parse(args)
	if flags.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "smoke get: one URL expected")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, flags.Arg(0), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke get:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke get:", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "smoke get: status", resp.Status)
		return 1
	}
	return 0
}
