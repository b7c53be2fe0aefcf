// Command crireset stops and removes every pod sandbox of a CRI runtime.
//
// The cluster's teardown runs it after the kubelet has stopped: stopping a
// sandbox through the CRI is what makes containerd run the CNI DEL that
// removes the pod's veth, its IP allocation, its masquerade rules and its
// network namespace. Killing the containers directly would leave all of
// that behind.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI socket path, e.g. /run/x/containerd.sock")
	timeout := flag.Duration("timeout", 60*time.Second, "time allowed for the whole teardown")
	flag.Parse()
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "crireset: -endpoint is required")
		os.Exit(2)
	}
	if err := run(*endpoint, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "crireset:", err)
		os.Exit(1)
	}
}

func run(endpoint string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := runtimeapi.NewRuntimeServiceClient(conn)

	list, err := client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes: %w", err)
	}
	failed := 0
	for _, sandbox := range list.Items {
		name := sandbox.Metadata.Namespace + "/" + sandbox.Metadata.Name
		// Stop before remove: removal refuses a sandbox whose network is
		// still set up, and stop is where the CNI teardown happens.
		if _, err := client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "crireset: stopping %s: %v\n", name, err)
			failed++
			continue
		}
		if _, err := client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			fmt.Fprintf(os.Stderr, "crireset: removing %s: %v\n", name, err)
			failed++
		}
	}
	fmt.Printf("crireset: removed %d of %d pod sandboxes\n", len(list.Items)-failed, len(list.Items))
	if failed > 0 {
		return fmt.Errorf("%d sandboxes could not be removed", failed)
	}
	return nil
}
