// Command pulumi-language-yaml is the Pulumi language host for programs
// written in Pulumi YAML, for machines that build their Pulumi toolchain from
// Go modules.
//
// It serves the language host of github.com/pulumi/pulumi-yaml (pkg/server)
// as that module's own cmd/pulumi-language-yaml does, with one addition: the
// Link call, which the CLI built here (toolchain/pulumi) makes at the end of
// `pulumi package add` and which the release the module proxy serves (1.25.0)
// leaves unimplemented; without it the command fails after writing the
// package's lock file and before recording the package in Pulumi.yaml.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/pulumi/pulumi-yaml/pkg/server"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// languageHost is pulumi-yaml's host with Link answered.
type languageHost struct {
	pulumirpc.LanguageRuntimeServer
}

// Link has nothing to do for YAML: a program names its packages in
// Pulumi.yaml, which the CLI writes after this call, and loads their schemas
// when it runs; there is no SDK to install or import.
func (languageHost) Link(context.Context, *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	return &pulumirpc.LinkResponse{}, nil
}

func main() {
	tracing := flag.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	// Accepted for the engines that pass them, as upstream's command does.
	flag.String("root", "", "[obsolete] Root of the program execution")
	flag.String("compiler", "", "[obsolete] Compiler to use to pre-process YAML")
	flag.Parse()
	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-yaml", "pulumi-language-yaml", *tracing)
	defer cmdutil.CloseTracing()

	if err := run(*tracing, flag.Args()); err != nil {
		cmdutil.Exit(err)
	}
}

func run(tracing string, args []string) error {
	// An interrupt, or the engine going away, stops the server.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	var engineAddress string
	if len(args) > 0 {
		engineAddress = args[0]
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("could not start health check against the engine: %w", err)
		}
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			host := server.NewLanguageHost(engineAddress, tracing, false /* useRPCLoader */)
			pulumirpc.RegisterLanguageRuntimeServer(srv, languageHost{host})
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("could not start the language host's RPC server: %w", err)
	}

	// The engine reads the port from the first line of output.
	fmt.Printf("%d\n", handle.Port)
	return <-handle.Done
}
