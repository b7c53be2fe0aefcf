// Command pulumi-resource-kubernetes serves the Pulumi kubernetes provider.
//
// It is the provider's own main built from its Go module: the upstream main
// embeds schema files that are generated at release time and absent from the
// module zip, so toolchain/build.sh generates them beside this file
// from the schema the module does carry.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
